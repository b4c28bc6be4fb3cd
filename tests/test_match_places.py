"""Places through the gazetteer: spellings, scripts, radius, countries, common words, persons."""

from __future__ import annotations

import time

import psutil
import pytest

from monitor.match import Document, Matcher, WatchlistError
from monitor.match.places import cyrillic_forms
from monitor.settings import Watchlist


def build(*places: object, **kw: object) -> Matcher:
    return Matcher.build([Watchlist(name="w", places=list(places), **kw)])  # type: ignore[arg-type]


def found(m: Matcher, body: str, title: str = "") -> list[tuple[str, str | None]]:
    res = m.match(Document(title=title, summary="", body=body))
    return [(x.text, x.place) for x in res.get("w", [])]


@pytest.fixture(scope="module")
def europe() -> Matcher:
    return build("Munich", "Lisbon", "Moscow", "Kyiv", "New York", "Rio de Janeiro", "Tokyo")


def test_spellings_and_scripts(europe: Matcher) -> None:
    assert found(europe, "Thousands gathered in München for the opening of Oktoberfest.") == [
        ("München", "Munich")
    ]
    assert found(europe, "Вчера в Мюнхен прибыли делегации.") == [("Мюнхен", "Munich")]
    assert found(europe, "Flights from Lisboa were cancelled on Friday.") == [("Lisboa", "Lisbon")]
    assert found(europe, "東京で大雨の警報が出された。") == [("東京", "Tokyo")]


def test_multi_word_places(europe: Matcher) -> None:
    body = "Storms moved from New York to Rio de Janeiro, where streets flooded."
    assert sorted(found(europe, body)) == [
        ("New York", "New York City"),
        ("Rio de Janeiro", "Rio de Janeiro"),
    ]


def test_longer_gazetteer_names_win() -> None:
    m = build("York", "Porto")
    assert found(m, "Officials in New York said the storm passed.") == []
    assert found(m, "Heavy rain fell on Porto Alegre on Sunday.") == []
    assert found(m, "Heavy rain fell on Porto and York on Sunday.") == [
        ("Porto", "Porto"),
        ("York", "York"),
    ]


def test_cyrillic_inflections(europe: Matcher) -> None:
    cases = {
        "Переговоры прошли в Москве в понедельник.": "Москве",
        "Делегация прибыла из Москвы утром.": "Москвы",
        "Он уехал в Москву на поезде.": "Москву",
        "Над Москвой прошёл сильный дождь.": "Москвой",
        "Вибухи пролунали в Києві вночі.": "Києві",
        "Він повернувся до Києва у вівторок.": "Києва",
    }
    for body, text in cases.items():
        got = found(europe, body)
        assert [t for t, _ in got] == [text], body
    assert found(europe, "Город Москвабад не существует.") == []
    assert "Москве" in cyrillic_forms("Москва")
    assert {"Києві", "Києва"} <= set(cyrillic_forms("Київ"))
    assert {"Львова", "Львові"} <= set(cyrillic_forms("Львів"))
    assert cyrillic_forms("Осло") == []


def test_radius_reports_the_town_found() -> None:
    m = build({"name": "Porto", "country": "PT", "within_km": 50})
    body = "Firefighters in Póvoa de Varzim fought the blaze through the night."
    assert found(m, body) == [("Póvoa de Varzim", "Póvoa de Varzim")]  # ~30 km from Porto
    assert found(m, "Firefighters in Coimbra fought the blaze.") == []  # ~100 km away
    narrow = build({"name": "Porto", "country": "PT", "within_km": 10})
    assert found(narrow, body) == []


def test_country_narrows_an_ambiguous_name() -> None:
    texas = build({"name": "Paris", "country": "US", "within_km": 40})
    france = build({"name": "Paris", "country": "FR"})
    plain = build("Paris")
    us_story = "A tornado damaged homes in Paris, Texas, late on Sunday."
    fr_story = "Protesters marched through Paris on Sunday, French police said."
    assert found(texas, us_story) == [("Paris", "Paris")]
    assert found(texas, fr_story) == []  # the smaller Paris needs its own context
    assert found(france, fr_story) == [("Paris", "Paris")]
    assert found(france, us_story) == []  # a namesake's state is named, France is not
    assert found(plain, fr_story) == [("Paris", "Paris")]
    # within_km follows the chosen Paris: Texas towns, not Versailles
    assert found(texas, "Schools in Versailles reopened, French officials said.") == []
    with pytest.raises(ValueError, match="unknown country 'Narnia'"):
        build({"name": "Paris", "country": "Narnia"})
    with pytest.raises(ValueError, match="unknown place 'Atlantisville'"):
        build("Atlantisville")
    with pytest.raises(ValueError, match="unknown place 'Lisbon' in Japan"):
        build({"name": "Lisbon", "country": "JP"})


def why_not(m: Matcher, body: str, title: str = "") -> list[str]:
    """The reasons place mentions were set aside (empty when the watchlist matched)."""
    e = m.explain(Document(title=title, summary="", body=body), "w")
    return [] if e.matched else [f.reason for f in e.set_aside if f.kind == "place"]


def test_a_namesake_picked_with_country_is_the_users_reading() -> None:
    # Valencia, Spain (0.8M) vs Valencia, Venezuela (1.6M): comparable, so `country: ES` is
    # read as the user's Valencia, on its own, like the biggest namesake is without country.
    iberia = build("Lisbon", "Porto", {"name": "Valencia", "country": "ES"})
    assert found(
        iberia, "Crews worked through the night in Valencia, officials said.", "Floods hit Valencia"
    ) == [("Valencia", "Valencia")]
    assert found(iberia, "", "Forest fires rage in Valencia") == [("Valencia", "Valencia")]
    assert found(iberia, "Dock workers in Porto walked out on Monday.") == [("Porto", "Porto")]
    # ... rejected only when the article points to another Valencia and names nothing near its own
    venezuela = "Floods hit Valencia after the river burst its banks, Venezuelan officials said."
    assert found(iberia, venezuela) == []
    assert why_not(iberia, venezuela) == [
        "the article points to another place of that name, Valencia, Venezuela (it names "
        "'Venezuelan'), and names nothing near Valencia, Spain"
    ]
    assert found(iberia, "Floods hit Valencia, Venezuela, on Sunday.") == []
    maracay = "Floods hit Valencia; the highway to Maracay was closed."  # a city near Venezuela's
    assert found(iberia, maracay) == []
    assert "(it names 'Maracay')" in why_not(iberia, maracay)[0]
    california = "A brush fire near Valencia, California, forced evacuations in Santa Clarita."
    assert found(iberia, california) == []
    # evidence for both: its own wins
    assert found(iberia, "Spanish and Venezuelan crews worked in Valencia.") == [
        ("Valencia", "Valencia")
    ]
    assert found(iberia, "Floods hit Valencia; Paterna and Manises were cut off.") == [
        ("Valencia", "Valencia")
    ]
    # without country: the biggest Valencia (Venezuela), which a Spanish context rejects
    plain = build("Valencia")
    assert found(plain, "Floods hit Valencia overnight.") == [("Valencia", "Valencia")]
    assert found(plain, "Floods hit Valencia, Spain, overnight.") == []


def test_a_much_smaller_namesake_still_needs_its_own_context() -> None:
    # Paris, Texas (25k) vs Paris, France (2.1M): 86x. "Paris" alone in the news is France, so
    # the Texas one needs Texas or a nearby city; France is unaffected.
    texas = build({"name": "Paris", "country": "US"})
    france = build({"name": "Paris", "country": "FR"})
    alone = "Power lines came down across Paris overnight, the utility said."
    tx = "Power lines came down across Paris, Texas, overnight."
    near = "Storms that hit Sherman moved on to Paris by midnight."
    assert found(texas, alone) == []
    assert why_not(texas, alone) == [
        "'Paris' on its own is taken to be Paris, France (86x the population of Paris, Texas); "
        "the article names nothing near Paris, Texas (its region or a nearby city)"
    ]
    assert found(texas, tx) == [("Paris", "Paris")]
    assert found(texas, near) == [("Paris", "Paris")]
    assert found(france, alone) == [("Paris", "Paris")]
    assert found(france, tx) == []
    assert why_not(france, tx) == [
        "the article points to another place of that name, Paris, Texas (it names 'Texas'), "
        "and names nothing near Paris, France"
    ]
    # London, Ontario (0.4M) vs London, England (9M): 21x
    ontario = build({"name": "London", "country": "CA"})
    england = build({"name": "London", "country": "GB"})
    assert found(ontario, "A fire broke out in a warehouse in London on Sunday.") == []
    on_story = "A fire broke out in London, Ontario, and crews from Kitchener helped."
    assert found(ontario, on_story) == [("London", "London")]
    assert found(ontario, "A fire broke out in London, Canadian police said.") == [
        ("London", "London")
    ]
    assert found(england, "A fire broke out in London on Sunday.") == [("London", "London")]
    assert found(england, "A fire broke out in London, Canadian police said.") == []


def test_cordoba_and_santiago() -> None:
    # Córdoba, Spain (0.33M) vs Córdoba, Argentina (2.1M): 6.5x, comparable
    spain = build({"name": "Córdoba", "country": "ES"})
    argentina = build({"name": "Córdoba", "country": "AR"})
    heat = "Temperatures in Córdoba reached 44C on Tuesday."
    assert found(spain, heat) == [("Córdoba", "Córdoba")]
    assert found(spain, "Temperatures in Cordoba reached 44C.") == [("Cordoba", "Córdoba")]
    assert found(argentina, heat) == [("Córdoba", "Córdoba")]
    ar_story = "Temperatures in Córdoba, Argentina, reached 38C."
    assert found(spain, ar_story) == []
    assert found(spain, "Temperatures in Córdoba and Villa Carlos Paz rose again.") == []
    assert found(argentina, ar_story) == [("Córdoba", "Córdoba")]
    assert found(argentina, "Temperatures in Córdoba, Spain, reached 44C.") == []
    # Córdoba, Mexico (0.2M) is 10.3x smaller than Argentina's: needs its own context
    mexico = build({"name": "Córdoba", "country": "MX"})
    assert found(mexico, heat) == []
    assert found(mexico, "Rain flooded Córdoba and nearby Orizaba.") == [("Córdoba", "Córdoba")]
    # Santiago, Chile is the biggest Santiago: on its own; a Philippine context rejects it
    chile = build({"name": "Santiago", "country": "CL"})
    assert found(chile, "Smog covered Santiago on Monday.") == [("Santiago", "Santiago")]
    assert found(chile, "A typhoon hit Santiago, Philippines, on Monday.") == []
    assert found(build("Santiago"), "Smog covered Santiago on Monday.") == [
        ("Santiago", "Santiago")
    ]


def test_common_word_places() -> None:
    m = build("Bath", "Mobile", "Split", "Nice", "Reading")
    ordinary = [
        "The hope is that a bath will help, she said.",
        "Mobile phones were banned in classrooms from September.",
        "Split decision: the judges could not agree.",
        "It was a nice day and reading was a pleasure.",
        "Reading the report, analysts saw a split in the market.",
        "BATH SALTS RECALLED AFTER COMPLAINTS",
    ]
    for body in ordinary:
        assert found(m, body) == [], body
    assert found(m, "Flooding in Bath, England, closed roads.") == [("Bath", "Bath")]
    assert found(m, "Residents of Bath were told to stay indoors.") == [("Bath", "Bath")]
    # headline-cased titles are not running text...
    assert found(m, "", title="Mobile Phones Banned In Schools Across The Country") == []
    # ...but context (the country or a nearby place) makes a capitalised name count
    assert found(m, "Heavy rain in Croatia.", title="Split Braces For Storm") == [
        ("Split", "Split")
    ]
    assert found(m, "Split was hit by storms overnight, Croatian media said.") == [
        ("Split", "Split")
    ]


def test_person_names_are_not_places() -> None:
    m = build("London", "Paris")
    assert found(m, "The novels of Jack London sold well in Germany.") == []
    assert found(m, "Socialite Paris Hilton opened a new boutique.") == []
    assert found(m, "Paris Hilton said on Monday she would return.") == []
    assert found(m, "A former aide, Mr London, declined to comment.") == []
    assert found(m, "Officers from the Paris Police arrived at the scene.") == [("Paris", "Paris")]
    assert found(m, "Flights to London and Paris were delayed.") == [
        ("London", "London"),
        ("Paris", "Paris"),
    ]
    assert found(m, "Visitors in paris complained.") == []  # not a proper noun


def test_streets_named_after_places_are_not_the_places() -> None:
    m = build("Carabobo", "Lisbon", "London")
    assert found(m, "Carabobo Street in Manila was closed for repairs.") == []
    assert found(m, "Shops on Oxford Street and Lisbon Rd. reopened in London.") == [
        ("London", "London")
    ]
    assert found(m, "Un choque en la calle Carabobo de Caracas dejó dos heridos.") == []
    # A street word after a full stop begins another sentence: the place still counts.
    assert found(m, "Floods hit Carabobo. Street vendors lost their stock.") == [
        ("Carabobo", "Carabobo")
    ]
    assert found(m, "Lisbon road traffic was light on Monday.") == [("Lisbon", "Lisbon")]


def test_country_and_demonym() -> None:
    m = build("Portugal")
    assert found(m, "Wildfires spread across Portugal on Monday.") == [("Portugal", "Portugal")]
    assert found(m, "The Portuguese government declared an emergency.") == [
        ("Portuguese", "Portugal")
    ]
    assert found(m, "Firefighters near Braga worked overnight.") == []
    wide = build({"name": "Portugal", "country_wide": True})
    assert found(wide, "Firefighters near Braga worked overnight.") == [("Braga", "Braga")]
    us = build("United States")
    assert found(us, "Two Americans were among the injured.") == [("Americans", "United States")]


def test_build_time_and_memory_with_gazetteer() -> None:
    t0 = time.perf_counter()
    m = Matcher.build(
        [
            Watchlist(
                name="big",
                places=[
                    {"name": "Portugal", "country_wide": True},  # type: ignore[list-item]
                    {"name": "Berlin", "within_km": 100},  # type: ignore[list-item]
                    "Tokyo",
                    "Mumbai",
                ],
            )
        ]
    )
    elapsed = time.perf_counter() - t0
    rss = psutil.Process().memory_info().rss / 2**20
    assert m.key_count > 500
    assert elapsed < 10, elapsed
    assert rss < 400, rss  # the whole test process, gazetteer included
    res = m.match(Document("Storms hit Potsdam and Braga", "", "Roofs were torn off."))
    assert sorted(x.place for x in res["big"]) == ["Braga", "Potsdam"]


def test_regions_match_as_places_in_their_languages() -> None:
    m = build("Bavaria", {"name": "Kharkiv Oblast"}, "Carabobo")
    assert found(m, "Heavy snow in Bavaria closed roads.") == [("Bavaria", "Bavaria")]
    assert found(m, "Schwere Unwetter in Bayern.") == [("Bayern", "Bavaria")]
    assert found(m, "Сильные снегопады в Баварии.") == [("Баварии", "Bavaria")]
    assert found(m, "Обстріли Харківської області тривають.") == [
        ("Харківської області", "Kharkiv Oblast")
    ]
    assert found(m, "Shelling hit the Kharkiv region overnight.") == [
        ("Kharkiv region", "Kharkiv Oblast")
    ]
    assert found(m, "A flood in Carabobo left 400 families homeless.") == [("Carabobo", "Carabobo")]
    # a region alone does not match its towns; within_km does
    assert found(m, "Floods hit Guacara overnight.") == []
    near = build({"name": "Carabobo", "within_km": 10})
    assert found(near, "Floods hit Guacara overnight.") == [("Guacara", "Guacara")]


def test_a_country_pick_is_never_overridden_by_a_namesakes_region() -> None:
    spain = build({"name": "Valencia", "country": "ES"})
    assert found(spain, "Las Fallas llenaron Valencia de turistas.") == [("Valencia", "Valencia")]
    carabobo = "Las lluvias inundaron barrios de Valencia, en el estado Carabobo."
    assert found(spain, carabobo) == []
    assert "Valencia, Venezuela (it names 'estado Carabobo')" in why_not(spain, carabobo)[0]


def test_small_towns_in_local_scripts() -> None:
    m = build("Rozhniativ", "Garding")  # about 3,900 and 3,100 people
    assert found(m, "У Рожнятові через зливи підтопило кілька вулиць.") == [
        ("Рожнятові", "Rozhniativ")
    ]
    assert found(m, "In Garding brannte eine Scheune ab.") == [("Garding", "Garding")]
    assert found(m, "In Husum brannte eine Scheune ab.") == []


def test_places_named_like_words_in_other_languages() -> None:
    essen = build("Essen")
    assert found(essen, "Das Essen in der Kantine war kalt, sagten die Schüler.") == []
    assert found(essen, "In Essen brannte in der Nacht eine Lagerhalle.") == [("Essen", "Essen")]
    assert found(essen, "A warehouse burned down in Essen overnight.") == [("Essen", "Essen")]
    shchastia = build("Shchastia")
    assert found(shchastia, "Бажаємо вам щастя в новому році.") == []
    assert found(shchastia, "Бої тривають поблизу Щастя.") == [("Щастя", "Shchastya")]
    assert found(build("La Paz"), "Firmaron la paz tras diez años.") == []
    assert found(build("Vladimir"), "Владимир Путин провёл совещание.") == []


def test_unknown_places_and_bad_terms_are_all_listed() -> None:
    with pytest.raises(WatchlistError) as exc:
        Matcher.build(
            [
                Watchlist(name="a", keywords=["flood"], places=["Lisbon"]),
                Watchlist(
                    name="b",
                    keywords=["fl*od"],
                    places=["Atlantisville", {"name": "Lisbon", "country": "JP"}],  # type: ignore[list-item]
                ),
            ]
        )
    assert isinstance(exc.value, ValueError)
    assert exc.value.errors == [
        "watchlists[1].keywords[0]: 'fl*od': '*' is only allowed at the end of a term",
        "watchlists[1].places[0]: unknown place 'Atlantisville'",
        "watchlists[1].places[1]: unknown place 'Lisbon' in Japan",
    ]
