"""What verifying block digests costs: hash rates, and GET with digests against without.

Run with ``python -m bench.blockhash``."""
