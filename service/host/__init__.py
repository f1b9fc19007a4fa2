"""The model host: owns models (registry, one worker per model, admission, forecasts) and
rebuilds them from :mod:`tbptt_service.storage` (checkpoint cuts, recovery). Knows no HTTP.
"""
