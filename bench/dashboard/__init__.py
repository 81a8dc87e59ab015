"""What an open dashboard costs a gateway: its CPU, and 4 KiB GETs, with 0 and 5 live tabs."""
