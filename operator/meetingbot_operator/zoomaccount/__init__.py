"""The ZoomAccount wing: each account's credentials, verified with a real token request; its
shared Zoom client; provisioning of service users; meeting lookups for auth: auto."""
