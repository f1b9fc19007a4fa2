"""Storage: the event log, the journal interface, checkpoint files, the recovery order and
the accepted observation record. Holds bytes and records, never a Forecaster.
"""
