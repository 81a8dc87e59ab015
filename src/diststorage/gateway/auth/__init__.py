"""Authentication's adapters in the gateway: request bodies that verify themselves."""
