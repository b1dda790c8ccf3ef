"""Scratch (not in the repo): the joint property test against the old publisher, each table protected alone."""
import tests.insight.test_sdc_linked as linked
from broker.insight.sdc import suppress


def apart(a, b, *, min_population):
    return suppress(a, min_population=min_population), suppress(b, min_population=min_population)


linked.suppress_pair = apart
test_old = linked.test_two_partitions_of_one_set_of_events_give_no_cell_away_together
