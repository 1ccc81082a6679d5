"""The model: what a push is (notifications, payloads, broadcasts, results). No I/O.

``rules`` holds the field rules the others share (and how a broken rule is reported);
``payload`` the ``aps`` dictionary and its parts; ``notification`` one push to one device;
``broadcast`` iOS 18 broadcast pushes and channel requests; ``results`` what APNs answered.
"""
