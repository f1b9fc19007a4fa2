"""The command line: ``tbptt-online serve``, ``feed`` (a CSV into a running server),
``forecast`` and ``models`` (the last three through :class:`tbptt_online.client.Client`).
"""
