"""Optional integrations, each behind its own extra and imported only when used.

- :mod:`apnskit.contrib.celery`: send from Celery workers (``pip install 'apnskit[celery]'``).
"""
