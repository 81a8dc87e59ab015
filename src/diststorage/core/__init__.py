"""Settings, errors, ids and small shared types. Imports nothing else from the project."""
