-- Live SSH connections through the hub's jump host, as aetherd last reported
-- them (agents at work count as activity, like terminal input).
ALTER TABLE vm_boots ADD COLUMN ssh_sessions integer NOT NULL DEFAULT 0;
