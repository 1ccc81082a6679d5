"""Credentials: token (.p8 JWT) and certificate (.pem/.p12) authentication. No network I/O."""
