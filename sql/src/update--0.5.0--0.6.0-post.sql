
-- memoria 0.5.0 -> 0.6.0, last part: nothing more.
