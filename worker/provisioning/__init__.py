"""The imperative shell of provisioning: performs the planner's steps against the exchange and records them."""
