-- Wrong on purpose: a grace period shorter than the failure detector's timeout.
return require("clusterlua.recovery").exclude_after_grace { grace_ms = 200 }
