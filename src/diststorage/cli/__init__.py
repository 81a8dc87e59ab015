"""The `diststorage` command line."""
