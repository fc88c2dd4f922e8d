"""spec.webhook: the envelope and signature of a notification, and the one deliverer."""
