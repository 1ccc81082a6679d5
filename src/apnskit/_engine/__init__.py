"""The engine both clients share: tickets, retries, deadlines, the pool; no I/O, no clock.

- :mod:`~apnskit._engine.dispatcher`: the :class:`~apnskit._engine.dispatcher.Dispatcher`,
  which owns every notification until its one result (its docstring is the theory of
  operation);
- :mod:`~apnskit._engine.tickets`: a notification's :class:`~apnskit._engine.tickets.Ticket`,
  the retry rules, and how its result is written;
- :mod:`~apnskit._engine.pool`: the connection slots, connect backoff and health checks;
- :mod:`~apnskit._engine.client_events`: the public events reported to ``event_hook``.

Like the core it sits on (:mod:`apnskit._core`), nothing here imports ``socket``, ``ssl``,
``anyio``, ``threading`` or ``time``: the clients pass the time in and do the I/O.
"""
