"""Object storage: every conversation with S3 (or an S3-compatible server) goes through here."""
