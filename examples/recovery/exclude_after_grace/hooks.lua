-- A voting node down for more than 5 s is excluded from voting by the master; the
-- exclusion is cleared when the node comes back.
return require("clusterlua.recovery").exclude_after_grace { grace_ms = 5000 }
