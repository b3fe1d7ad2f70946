"""The studies' convergence test: validation NLL over the last fifth of training."""

import pytest

from experiments.convergence import last_fifth_change, last_two_validations, trend


def test_last_fifth_change_reads_the_last_evaluation_up_to_80_percent_and_the_last():
  losses = {250: 1.0, 500: 0.8, 750: 0.7, 800: 0.65, 900: 0.64}  # step 1000 is tested, not validated
  assert last_fifth_change(losses, 1000) == (0.65, 0.64)
  assert last_fifth_change({400: 0.9, 800: 0.7, 1000: 0.6}, 1200) == (0.7, 0.6)


def test_trend_is_flat_within_one_percent_falling_or_rising_beyond():
  assert trend(1.0, 0.995) == "flat" and trend(1.0, 1.005) == "flat"
  assert trend(1.0, 0.98) == "falling"
  assert trend(1.0, 1.02) == "rising"


@pytest.mark.parametrize("losses", [{}, {200: 1.0, 400: 0.9}, {900: 0.8}])
def test_a_run_without_a_validation_on_each_side_of_80_percent_is_refused_with_the_fix(losses):
  with pytest.raises(SystemExit, match="smaller --eval_every_steps"):  # 600 steps validated every 200: at 200 and 400
    last_fifth_change(losses, 600 if 200 in losses else 1000)


def test_last_two_validations_are_the_latest_trend_and_need_two():
  assert last_two_validations({200: 5.4, 600: 4.2, 400: 4.6, 800: 3.9}) == ((600, 4.2), (800, 3.9))
  with pytest.raises(SystemExit, match="needs two validations"):
    last_two_validations({200: 5.4})
