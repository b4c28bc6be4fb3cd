-- Version 4: the same folding, about 20 times faster (measured: 12-21 µs instead of 370-420 µs
-- per 320 characters of English text, 82 instead of 364 µs for Spanish). `translate` compares
-- each character with every character of its map (320 here); a stored article's search column
-- folds its title, summary and body, so the first pass of 10,000 feeds spent most of
-- PostgreSQL's time there. Now: separators become spaces with one regular expression, ASCII
-- text is done, Latin-1 text takes a 53-letter map, other text the whole 261-letter map.
-- The result is the same for every string (tests/test_storage_postgres.py compares them);
-- stored search columns stay valid.
CREATE OR REPLACE FUNCTION feedwatch_fold(t text) RETURNS text LANGUAGE sql IMMUTABLE STRICT
PARALLEL SAFE AS $$
SELECT CASE
    WHEN s !~ '[^\x01-\x7f]' THEN s
    WHEN s !~ '[\u0100-\u0233]' THEN translate(s,
        'ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿ',
        'aaaaaaceeeeiiiinooooouuuuyaaaaaaceeeeiiiinooooouuuuyy')
    ELSE translate(s,
        'ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĲĳĴĵĶķĹĺĻļĽľĿŀŃńŅņŇňŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžſƠơƯưǄǅǆǇǈǉǊǋǌǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǠǡǦǧǨǩǪǫǬǭǰǱǲǳǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯȰȱȲȳ',
        'aaaaaaceeeeiiiinooooouuuuyaaaaaaceeeeiiiinooooouuuuyyaaaaaaccccccccddeeeeeeeeeegggggggghhiiiiiiiiiiijjkkllllllllnnnnnnoooooorrrrrrssssssssttttuuuuuuuuuuuuwwyyyzzzzzzsoouudddlllnnnaaiioouuuuuuuuuuaaaaggkkoooojdddggnnaaaaaaeeeeiiiioooorrrruuuusstthhaaeeooooooooyy')
    END
FROM (SELECT regexp_replace(feedwatch_lower(t),
    '[!"#$%&''()*+,\-./:;<=>?@\[\\\]\^_`{|}~‘’‚‛“”„«»‹›‐‑‒–—―…·•¡¿§¶†‡※]',
    ' ', 'g') AS s) AS lowered
$$;
