import pytest
from pydantic import ValidationError

from vidrec.api.errors import ApiError, parse_query
from vidrec.schema import HomeQuery


def test_interests_come_as_comma_separated_category_ids() -> None:
    q = parse_query(HomeQuery, {"user_id": ["12"], "interests": ["3, 7"]})
    assert q.interests == (3, 7)
    assert parse_query(HomeQuery, {"user_id": ["12"]}).interests == ()


def test_out_of_range_interest_is_a_4xx_naming_the_field() -> None:
    with pytest.raises(ApiError) as err:
        parse_query(HomeQuery, {"user_id": ["12"], "interests": ["3,99"]})
    assert err.value.status < 500 and "interests" in (err.value.field or "")
    with pytest.raises(ValidationError):
        HomeQuery(user_id=1, interests=(-1,))
