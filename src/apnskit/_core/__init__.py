"""The sans-I/O core: HTTP/2 (RFC 9113) for APNs, bytes in and events out; no I/O, no clock."""
