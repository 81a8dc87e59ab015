"""Who is asking, and may they: request signatures, verified bodies, keys and grants."""
