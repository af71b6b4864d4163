"""Round trips counted on made-up intervals: what `make bench` reports for the critical path."""

from bench.clock import Flight, round_trips


def flights(*intervals):
    return [Flight(f"svc:Call{n}", sent, answered, 200, {})
            for n, (sent, answered) in enumerate(intervals)]


def test_sequential_requests_are_one_round_trip_each():
    assert round_trips(flights((0, 1), (2, 3), (4, 5))) == 3


def test_requests_in_flight_together_count_once():
    # the claim beside its seal, then StartExecution: two round trips for three requests
    assert round_trips(flights((0, 10), (3, 8), (11, 12))) == 2


def test_a_long_request_beside_two_sequential_ones_counts_as_those_two():
    # merging overlapping intervals would say 1: the chain (1, 4) then (6, 9) is sequential
    assert round_trips(flights((0, 10), (1, 4), (6, 9))) == 2


def test_a_chain_of_overlaps_is_still_sequential_at_its_ends():
    # each overlaps the next, but the first was answered before the third was sent
    assert round_trips(flights((0, 10), (8, 15), (12, 20))) == 2


def test_a_request_sent_as_the_one_before_is_answered_follows_it():
    assert round_trips(flights((0, 5), (5, 6))) == 2


def test_order_given_does_not_matter():
    made = flights((6, 9), (0, 10), (11, 12), (1, 4))
    assert round_trips(made) == round_trips(list(reversed(made))) == 3


def test_no_requests_no_round_trips():
    assert round_trips([]) == 0
