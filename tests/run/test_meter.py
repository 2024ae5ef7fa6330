"""How a run's rate is written: images per second, or seconds per image when slower than one a second."""

from heatlens.run.meter import Meter, Summary, speed


def test_a_rate_is_never_shown_as_zero_images_per_second():
    assert speed(85.34) == "85.3 images/s"
    assert speed(1.0) == "1.0 images/s"
    assert speed(0.025) == "40.0 s/image"
    assert speed(0.0) == "no image yet"


def test_slow_runs_show_seconds_per_image_in_the_progress_and_the_summary():
    meter = Meter(total=10, enabled=False)
    meter.advance(2)
    assert meter.status(meter.start + 50.0) == "2/10 images (20%), 25.0 s/image, 0:03:20 left"
    assert Summary(images=8, errors=1, seconds=317.0).line() == (
        "8 images explained, 1 failed (listed in errors.csv) in 0:05:17: 35.2 s/image")
