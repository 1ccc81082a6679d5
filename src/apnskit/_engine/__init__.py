"""The engine both clients share: pool, retries, deadlines, tickets. No I/O, no clock of its own."""
