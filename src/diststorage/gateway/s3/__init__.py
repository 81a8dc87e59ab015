"""The S3 API front end."""
