"""Credentials: token (.p8 JWT) and certificate (.pem/.p12) authentication. No network I/O.

- :mod:`~apnskit._credentials.token`: :class:`~apnskit.TokenCredentials`, signing JWTs;
- :mod:`~apnskit._credentials.certificate`: :class:`~apnskit.CertificateCredentials`;
- :mod:`~apnskit._credentials.certinfo`: what a certificate says about itself;
- :mod:`~apnskit._credentials.keys`: reading files, PEM blocks and private keys, for both.

Both classes offer the same four methods the clients call, so a client never asks which kind it
holds:

- ``authorization()``: the ``authorization`` header value and its generation, or ``None``;
- ``token_rejected(generation)``: APNs answered 403 ``ExpiredProviderToken`` to that token;
- ``resolve_environment(environment)``: the environment to connect to;
- ``configure_ssl_context(context)``: load a client certificate into a TLS context.
"""
