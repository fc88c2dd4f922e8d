"""Kubernetes I/O: the API client, the verbs the operator uses (its RBAC list), Events, and
the opted-in Secrets with their watch."""
