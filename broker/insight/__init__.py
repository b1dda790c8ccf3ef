"""The partnership's performance framework, hotspots and process map (issue 17): measures computed from the
broker's own records, by tokens and codes, never by a child's data, and published under statistical disclosure
control."""
