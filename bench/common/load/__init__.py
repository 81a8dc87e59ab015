"""The mixed PUT/GET/DELETE load with its committed-state model, shared by chaos and scale_out."""
