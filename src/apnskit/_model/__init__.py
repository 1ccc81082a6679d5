"""The model: what a push is (notifications, payloads, broadcasts, results). No I/O."""
