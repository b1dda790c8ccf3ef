"""The hub's own view of the event stream (issue 16): a child's history, cumulative concern, one enquiry per child,
repeat referrals and timeliness clocks, as pure functions over events, register snapshots and times given as data.
The shell that feeds them is broker/service/hub_watch.py."""
