concurrent_title = "64 at once, 2 workers"
stop_target_ms = 2
