"""Police adapter: NPCC POLE (Person, Object, Location, Event) JSON records -> canonical safeguarding events."""
