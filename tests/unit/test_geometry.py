from diststorage.gateway.objects.geometry import Geometry


def test_counts_and_ranges() -> None:
    g = Geometry(size_bytes=10 * 4 + 3, stripe_size_bytes=4, segment_stripes=3)
    assert g.stripe_count == 11
    assert g.segment_count == 4
    assert g.stripe_length(10) == 3
    assert g.segment_stripe_range(3) == range(9, 11)
    assert g.stripes_for(0, 43) == range(11)
    assert g.stripes_for(3, 5) == range(0, 2)
    assert g.stripes_for(4, 8) == range(1, 2)
    assert g.stripes_for(5, 5) == range(0)


def test_empty_object() -> None:
    g = Geometry(0, 4, 3)
    assert (g.stripe_count, g.segment_count) == (0, 0)
