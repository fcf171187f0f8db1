"""Synthetic payer network and member populations for the sandbox (pure, seeded).

A network is N old payers (``payer-a``, ``payer-b``, ...) plus the ``platform``
payer that will ask them for data. For each old payer this module streams a FHIR
R4 population household by household: a subscriber, often a spouse, up to four
children (twins included), each with a Patient, a Coverage, a few years of
clinical and claims history, and one Provenance.

Everything derives from ``random.Random`` instances seeded from (seed, payer
slug, household index) with a stable hash, plus the ``as_of`` date passed in.
There is no I/O, no clock and no global randomness, so the same arguments give
the same resources, and any one household can be rebuilt on its own. That is
how :func:`sample_switchers` agrees with :func:`generate_payer_population`
without holding the population in memory.

All people, identifiers and phone numbers (555 exchange) are synthetic; cities,
states, ZIP codes and area codes are real so that addresses look right.
About 3% of members get sensitive care (substance use, HIV, depression,
contraception); those resources carry ``meta.security`` labels (v3-ActCode
ETH/HIV/PSY/SEX and confidentiality R) so consent features have something to
withhold.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import NamedTuple

from payerbridge.errors import InvalidInput

__all__ = [
    "Network",
    "PayerProfile",
    "Resource",
    "build_network",
    "generate_payer_population",
    "sample_switchers",
]

Resource = dict[str, object]
"""One FHIR R4 resource as JSON-ready dicts, lists, strings and numbers."""

_Draw = Callable[[], float]  # a bound ``random.Random.random``

PLATFORM_SLUG = "platform"
MAX_HOUSEHOLD = 6  # subscriber + spouse + four children

# --- code systems -------------------------------------------------------------

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
_TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"
_V2_0203 = _TERMINOLOGY + "v2-0203"
_HREX_TEMP = "http://hl7.org/fhir/us/davinci-hrex/CodeSystem/hrex-temp"
_ACT_CODE = _TERMINOLOGY + "v3-ActCode"
_CONFIDENTIALITY = _TERMINOLOGY + "v3-Confidentiality"
_ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
_LOINC = "http://loinc.org"
_SNOMED = "http://snomed.info/sct"
_RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_CVX = "http://hl7.org/fhir/sid/cvx"
_CPT = "http://www.ama-assn.org/go/cpt"
_UCUM = "http://unitsofmeasure.org"
_SOPT = "https://nahdo.org/sopt"
_UMB = ("UMB", "Unique Product-independent Payer Person Identifier")
PRIOR_AUTH_PROFILE = (
    "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-priorauthorization"
)

# --- the network --------------------------------------------------------------

_PAYER_NAMES = (
    "Aspen Mutual Health", "Bluewater Health Plan", "Cardinal Care Insurance",
    "Driftwood Health", "Evergreen Benefit Trust", "Foxglove Health Partners",
    "Granite Peak Health Plan", "Hollowbrook Mutual", "Ironwood Health Plan",
    "Juniper Mutual Insurance", "Kestrel Health", "Lakeshore Health Alliance",
    "Meadowlark Health Plan", "Northgate Benefit Plan", "Oakleaf Health Cooperative",
    "Prairie Sky Health", "Quarry Hill Health Plan", "Redwood Coast Health",
    "Sagebrush Health Plan", "Tidewater Mutual Health", "Upland Health Partners",
    "Valley Oak Health", "Willow Creek Health Plan", "Xenia Health Cooperative",
    "Yarrow Health", "Zephyr Health Plan",
)  # fmt: skip
_PLATFORM_NAME = "Northwind Health Plan"
_NPI_PAYER, _NPI_PLATFORM, _NPI_PROVIDER_ORG, _NPI_PRACTITIONER = 0, 1, 2, 3


@dataclass(frozen=True)
class PayerProfile:
    """A payer in the sandbox network, as the other payers know it."""

    slug: str
    name: str
    npi: str
    member_id_prefix: str


@dataclass(frozen=True)
class Network:
    """The old payers that hold data and the platform payer that requests it."""

    payers: tuple[PayerProfile, ...]
    platform: PayerProfile


def build_network(payer_count: int) -> Network:
    """Name payers ``payer-a``, ``payer-b``, ... and give them NPIs (no randomness)."""
    if payer_count < 1:
        raise InvalidInput("a sandbox network needs at least one old payer")
    payers = tuple(_payer_profile(index) for index in range(payer_count))
    platform = PayerProfile(PLATFORM_SLUG, _PLATFORM_NAME, _npi(_NPI_PLATFORM, 0), "NW")
    return Network(payers=payers, platform=platform)


def _payer_profile(index: int) -> PayerProfile:
    letters = _letters(index)
    base = _PAYER_NAMES[index % len(_PAYER_NAMES)]
    lap = index // len(_PAYER_NAMES)
    name = f"{base} {lap + 1}" if lap else base
    initials = "".join(word[0] for word in base.split()[:2]).upper()
    npi = _npi(_NPI_PAYER, index)
    return PayerProfile(f"payer-{letters}", name, npi, initials + letters.upper())


def _letters(index: int) -> str:
    """0 -> a, 25 -> z, 26 -> aa (bijective base 26)."""
    letters = ""
    number = index + 1
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return letters


def _npi(kind: int, index: int) -> str:
    """A 10-digit NPI: an affine map of (kind, index), then the CMS Luhn check digit."""
    body = ((kind * 1_000_000 + index) * 7_654_321 + 1_234_567) % 100_000_000
    base = f"{1 if kind == _NPI_PRACTITIONER else 2}{body:08d}"
    return base + str(npi_check_digit(base))


def npi_check_digit(base: str) -> int:
    """Luhn check digit over ``80840`` followed by the first nine NPI digits."""
    total = 0
    for position, char in enumerate(reversed("80840" + base)):
        digit = int(char)
        if position % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return (10 - total % 10) % 10


def derive_seed(*parts: object) -> int:
    """A stable 64-bit seed from any parts; unlike ``hash()`` it is the same in every process."""
    text = "|".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


# --- vocabulary ---------------------------------------------------------------
# Name lists run roughly from common to rare; _skewed() favours the front.


def _words(text: str) -> tuple[str, ...]:
    """Whitespace-separated words, first occurrence kept, order kept."""
    return tuple(dict.fromkeys(text.split()))


_FEMALE_NAMES = _words("""
    Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty
    Sandra Margaret Ashley Kimberly Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie
    Dorothy Rebecca Sharon Laura Cynthia Amy Kathleen Angela Shirley Brenda Emma Anna Pamela
    Nicole Samantha Katherine Christine Helen Debra Rachel Carolyn Janet Maria María Catherine
    Heather Diane Olivia Julie Joyce Victoria Ruth Virginia Lauren Kelly Christina Joan Evelyn
    Judith Andrea Hannah Megan Cheryl Jacqueline Martha Madison Teresa Gloria Sara Janice Ann
    Kathryn Abigail Sophia Frances Jean Alice Judy Isabella Julia Grace Amber Denise Danielle
    Marilyn Beverly Charlotte Natalie Theresa Diana Brittany Doris Kayla Alexis Lori Marie Ava
    Mia Amelia Harper Camila Sofía Scarlett Eleanor Chloé Chloe Mila Violet Penelope Gianna Aria
    Ella Avery Hazel Nora Layla Lily Aurora Luna Nova Ellie Isla Willow Zoe Zoë Riley Stella Ivy
    Emilia Naomi Lucy Maya Leah Audrey Claire Guadalupe Rosa Carmen Lucía Valentina Ximena Inés
    Mariana Daniela Fernanda Renée Anne-Marie Jo-Ann Mary-Kate Ngoc Linh Thu Mai Hoa Mei Xiu
    Yuki Hana Ji-woo Seo-yeon Min-ji Priya Ananya Aisha Fatima Amara Chidinma Ngozi Imani
    Aaliyah Jasmine Destiny Keisha Nia Zaria Brianna Siobhan Saoirse Aoife Niamh Maeve Bridget
    Colleen Erin Katarzyna Agnieszka Olga Svetlana Ingrid Astrid Greta Heidi Elif Leila Yasmin
    Noor Rania Esther Miriam Rivka Marisol Beatriz Graciela Dolores Consuelo Itzel Yesenia
    Araceli Nayeli D'Asia Ja'Nya
""")
_MALE_NAMES = _words("""
    James Robert John Michael David William Richard Joseph Thomas Christopher Charles Daniel
    Matthew Anthony Mark Donald Steven Andrew Paul Joshua Kenneth Kevin Brian George Timothy
    Ronald Jason Edward Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin
    Scott Brandon Benjamin Samuel Gregory Alexander Patrick Frank Raymond Jack Dennis Jerry
    Tyler Aaron José Adam Nathan Henry Zachary Douglas Peter Kyle Noah Ethan Jeremy Walter
    Christian Keith Roger Terry Austin Sean Gerald Carl Harold Dylan Arthur Lawrence Jordan
    Jesse Bryan Billy Bruce Gabriel Joe Logan Alan Juan Albert Willie Elijah Wayne Randy Vincent
    Mason Roy Ralph Bobby Russell Bradley Philip Eugene Liam Oliver Lucas Theodore Mateo Levi
    Sebastian Owen Asher Ezra Hudson Luca Aiden Julian Grayson Wyatt Isaac Elias Santiago
    Ezekiel Josiah Caleb Cooper Lincoln Miles Isaiah Kai Angel Adrian Cameron Nolan Roman Eli
    Luis Carlos Jesús Miguel Alejandro Raúl Héctor Joaquín Andrés Diego Javier Rafael Ramón
    Sergio Fernando Ángel Eduardo Minh Tuan Huy Duc Khoa Wei Jian Hao Hiroshi Kenji Takumi
    Min-jun Ji-ho Seo-jun Arjun Rohan Vikram Rahul Mohammed Ahmed Omar Ali Yusuf Hassan Kwame
    Chinedu Oluwaseun Tunde DeShawn D'Andre Ja'Marcus Tyrone Darnell Malik Jamal Terrell Andre
    André Jean-Luc Jean-Pierre Seán Ciarán Declan Finn Cormac Lars Erik Björn Sven Piotr Tomasz
    Dmitri Ivan Nikolai Yosef Avi Moshe Ari Thiago Mauricio
""")
_SURNAMES = _words("""
    Smith Johnson Williams Brown Jones Garcia García Miller Davis Rodriguez Rodríguez Martinez
    Hernández Lopez López Gonzalez González Wilson Anderson Thomas Taylor Moore Jackson Martin
    Lee Perez Pérez Thompson White Harris Sanchez Sánchez Clark Ramírez Lewis Robinson Walker
    Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera
    Campbell Mitchell Carter Roberts Gómez Phillips Evans Turner Díaz Parker Cruz Edwards
    Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutiérrez Ortiz Morgan Cooper
    Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chávez Wood
    James Bennett Gray Mendoza Ruiz Hughes Price Álvarez Castillo Sanders Patel Myers Long Ross
    Foster Jiménez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes
    Gonzales Fisher Vásquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds
    Griffin Wallace Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar
    Stevens Murray Ford Castro Marshall Owens Harrison Fernández McDonald Woods Washington
    Kennedy Wells Vargas Henry Chen Freeman Webb Tucker Guzmán Burns Crawford Olson Simpson
    Porter Hunter Gordon Méndez Silva Shaw Snyder Mason Dixon Muñoz Hunt Hicks Holmes Palmer
    Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice Schmidt O'Brien
    O'Connor O'Neill O'Sullivan D'Angelo D'Souza McAllister MacDonald Müller Schröder Nowak
    Kowalski Wójcik Singh Kaur Shah Wang Li Zhang Liu Huang Yang Zhao Wu Zhou Xu Pham Hoang
    Huynh Phan Vu Vo Dang Bui Ngo Duong Yamamoto Tanaka Suzuki Watanabe Sato Park Choi Jung Kang
    Cho Yoon Okafor Adeyemi Mensah Cohen Levi Friedman Katz Goldberg Rosen Smith-Jones Lee-Chen
    García-López Ali-Khan
""") + ("De la Cruz", "Del Rosario", "Van Dyke", "St. John")

_STREETS = _words("""
    Main Oak Maple Cedar Pine Elm Washington Lake Hill Park Walnut Sunset Lincoln Jackson Church
    River Highland Meadow Forest Ridge Willow Spring Chestnut Madison Jefferson Franklin Cherry
    Birch Dogwood Magnolia Hickory Sycamore Valley Mill Center Union Prospect Woodland Fairview
    Orchard Adams Monroe Grant Peachtree 1st 2nd 3rd 5th 10th 12th Laurel Aspen
""")
_STREET_SUFFIXES = ("St", "Ave", "Rd", "Dr", "Ln", "Blvd", "Ct", "Way", "Pl", "Ter", "Cir", "Pkwy")


class Place(NamedTuple):
    city: str
    state: str
    postal_code: str
    area_code: str
    utc_offset: str


# city (underscore for space);state;ZIP;area code;UTC offset (standard time)
_PLACE_ROWS = """
    Springfield;IL;62701;217;-06:00  Chicago;IL;60614;773;-06:00  Peoria;IL;61602;309;-06:00
    Columbus;OH;43215;614;-05:00  Cleveland;OH;44113;216;-05:00  Cincinnati;OH;45202;513;-05:00
    Indianapolis;IN;46204;317;-05:00  Detroit;MI;48226;313;-05:00  Grand_Rapids;MI;49503;616;-05:00
    Milwaukee;WI;53202;414;-06:00  Madison;WI;53703;608;-06:00  Minneapolis;MN;55401;612;-06:00
    Saint_Paul;MN;55102;651;-06:00  Des_Moines;IA;50309;515;-06:00  Kansas_City;MO;64105;816;-06:00
    St._Louis;MO;63101;314;-06:00  Omaha;NE;68102;402;-06:00  Louisville;KY;40202;502;-05:00
    Nashville;TN;37203;615;-06:00  Memphis;TN;38103;901;-06:00  Atlanta;GA;30303;404;-05:00
    Savannah;GA;31401;912;-05:00  Charlotte;NC;28202;704;-05:00  Raleigh;NC;27601;919;-05:00
    Richmond;VA;23219;804;-05:00  Baltimore;MD;21202;410;-05:00  Philadelphia;PA;19103;215;-05:00
    Pittsburgh;PA;15222;412;-05:00  Newark;NJ;07102;973;-05:00  Albany;NY;12207;518;-05:00
    Buffalo;NY;14202;716;-05:00  Brooklyn;NY;11201;718;-05:00  Boston;MA;02108;617;-05:00
    Worcester;MA;01608;508;-05:00  Hartford;CT;06103;860;-05:00  Providence;RI;02903;401;-05:00
    Portland;ME;04101;207;-05:00  Burlington;VT;05401;802;-05:00  Miami;FL;33130;305;-05:00
    Orlando;FL;32801;407;-05:00  Tampa;FL;33602;813;-05:00  Jacksonville;FL;32202;904;-05:00
    Birmingham;AL;35203;205;-06:00  New_Orleans;LA;70112;504;-06:00  Houston;TX;77002;713;-06:00
    Dallas;TX;75201;214;-06:00  Austin;TX;78701;512;-06:00  San_Antonio;TX;78205;210;-06:00
    El_Paso;TX;79901;915;-07:00  Oklahoma_City;OK;73102;405;-06:00  Denver;CO;80202;303;-07:00
    Albuquerque;NM;87102;505;-07:00  Phoenix;AZ;85004;602;-07:00  Tucson;AZ;85701;520;-07:00
    Salt_Lake_City;UT;84111;801;-07:00  Boise;ID;83702;208;-07:00  Las_Vegas;NV;89101;702;-08:00
    Los_Angeles;CA;90012;213;-08:00  San_Diego;CA;92101;619;-08:00  San_Jose;CA;95113;408;-08:00
    Sacramento;CA;95814;916;-08:00  Fresno;CA;93721;559;-08:00  Portland;OR;97204;503;-08:00
    Seattle;WA;98101;206;-08:00  Spokane;WA;99201;509;-08:00  Anchorage;AK;99501;907;-09:00
    Honolulu;HI;96813;808;-10:00
"""
_PLACES = tuple(Place(*entry.replace("_", " ").split(";")) for entry in _PLACE_ROWS.split())

_EMPLOYERS = (
    "Acme Manufacturing", "Riverside School District", "Bright Path Logistics",
    "Summit Engineering", "Harvest Foods Cooperative", "Lumen Software",
    "County of Fairview", "Pioneer Credit Union", "Blue Heron Hospitality",
    "Keystone Construction", "Northfield University", "Cascade Retail Group",
)  # fmt: skip
_COMMERCIAL_PLANS = (
    ("PPO-GOLD", "Gold PPO"), ("PPO-SILVER", "Silver PPO"), ("HMO-SILVER", "Silver HMO"),
    ("HMO-GOLD", "Gold HMO"), ("EPO-BRONZE", "Bronze EPO"), ("HDHP-BRONZE", "Bronze HDHP"),
)  # fmt: skip
_ADULT_AGE_BANDS = ((18, 25, 0.09), (26, 34, 0.17), (35, 44, 0.19), (45, 54, 0.19), (55, 64, 0.18))

# --- clinical vocabulary ------------------------------------------------------

_Code = tuple[str, str]  # (code, display)


class _Chronic(NamedTuple):
    code: _Code  # ICD-10-CM
    min_age: int
    base: float  # prevalence at min_age
    slope: float  # added per year of age
    cap: float
    sex: str | None
    medication: _Code | None  # RxNorm
    lab: str | None  # key into _LABS
    authorization: _Code | None  # CPT that may need prior authorization


class _Problem(NamedTuple):
    code: _Code  # ICD-10-CM
    min_age: int
    max_age: int
    weight: int
    medication: _Code | None
    procedure: _Code | None  # CPT done at the visit
    authorization: _Code | None


class _Sensitive(NamedTuple):
    code: _Code
    label: _Code  # v3-ActCode information sensitivity
    min_age: int
    max_age: int
    sex: str | None
    medication: _Code
    org: int  # index into _PROVIDER_ORGS


_AMOXICILLIN = ("308182", "amoxicillin 250 MG Oral Capsule")
_NAPROXEN = ("849574", "naproxen sodium 220 MG Oral Tablet")
_ACETAMINOPHEN = ("313782", "acetaminophen 325 MG Oral Tablet")

_CHRONIC = (
    _Chronic(("I10", "Essential (primary) hypertension"), 30, 0.04, 0.010, 0.6, None,
             ("314076", "lisinopril 10 MG Oral Tablet"), "creatinine", None),
    _Chronic(("E78.5", "Hyperlipidemia, unspecified"), 35, 0.05, 0.008, 0.45, None,
             ("312961", "simvastatin 20 MG Oral Tablet"), "cholesterol", None),
    _Chronic(("E11.9", "Type 2 diabetes mellitus without complications"), 35, 0.03, 0.004, 0.25,
             None, ("860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"),
             "a1c", None),
    _Chronic(("J45.909", "Unspecified asthma, uncomplicated"), 2, 0.08, 0.0, 0.08, None,
             ("745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"), None, None),
    _Chronic(("E03.9", "Hypothyroidism, unspecified"), 30, 0.04, 0.001, 0.1, "female",
             ("966222", "levothyroxine sodium 0.075 MG Oral Tablet"), "tsh", None),
    _Chronic(("J30.9", "Allergic rhinitis, unspecified"), 4, 0.1, 0.0, 0.1, None,
             ("1014676", "cetirizine hydrochloride 10 MG Oral Tablet"), None, None),
    _Chronic(("M17.11", "Unilateral primary osteoarthritis, right knee"), 50, 0.05, 0.004, 0.15,
             None, _NAPROXEN, None, ("27447", "Total knee arthroplasty")),
    _Chronic(("I25.10", "Atherosclerotic heart disease of native coronary artery without angina "
              "pectoris"), 50, 0.02, 0.003, 0.12, None,
             ("309362", "clopidogrel 75 MG Oral Tablet"), None,
             ("93458", "Cardiac catheterization")),
)  # fmt: skip
_OBESITY = ("E66.9", "Obesity, unspecified")

_PROBLEMS = (
    _Problem(("J06.9", "Acute upper respiratory infection, unspecified"), 0, 120, 30, None, None,
             None),
    _Problem(("J02.9", "Acute pharyngitis, unspecified"), 3, 120, 12, _AMOXICILLIN,
             ("87880", "Rapid strep test"), None),
    _Problem(("H66.90", "Otitis media, unspecified, unspecified ear"), 0, 12, 15, _AMOXICILLIN,
             None, None),
    _Problem(("N39.0", "Urinary tract infection, site not specified"), 12, 120, 8,
             ("309309", "ciprofloxacin 500 MG Oral Tablet"), ("81003", "Urinalysis, automated"),
             None),
    _Problem(("M54.50", "Low back pain, unspecified"), 18, 120, 10, _NAPROXEN, None,
             ("72148", "MRI lumbar spine without contrast")),
    _Problem(("S93.401A", "Sprain of unspecified ligament of right ankle, initial encounter"), 5,
             120, 6, _ACETAMINOPHEN, ("73610", "X-ray ankle, 3 views"), None),
    _Problem(("R51.9", "Headache, unspecified"), 8, 120, 6, _ACETAMINOPHEN, None,
             ("70553", "MRI brain without and with contrast")),
    _Problem(("L20.9", "Atopic dermatitis, unspecified"), 0, 120, 5, None, None, None),
    _Problem(("R05.9", "Cough, unspecified"), 0, 120, 8, None, None, None),
)  # fmt: skip
_EMERGENCIES = (
    _Problem(("R50.9", "Fever, unspecified"), 0, 120, 6, _ACETAMINOPHEN, None, None),
    _Problem(("R07.9", "Chest pain, unspecified"), 25, 120, 10, _ACETAMINOPHEN,
             ("93000", "Electrocardiogram, 12 leads"), None),
    _Problem(("R10.9", "Unspecified abdominal pain"), 5, 120, 10, None,
             ("74177", "CT abdomen and pelvis with contrast"), None),
    _Problem(("S61.411A", "Laceration without foreign body of right hand, initial encounter"), 3,
             120, 8, None, ("12002", "Simple repair of superficial wound"), None),
    _Problem(("S93.401A", "Sprain of unspecified ligament of right ankle, initial encounter"), 5,
             120, 6, _ACETAMINOPHEN, ("73610", "X-ray ankle, 3 views"), None),
)  # fmt: skip
_BEHAVIORAL, _WOMENS, _INTERNAL = 6, 7, 1
_SENSITIVE = (
    _Sensitive(("F10.20", "Alcohol dependence, uncomplicated"),
               ("ETH", "substance abuse information sensitivity"), 18, 120, None,
               ("1483744", "naltrexone hydrochloride 50 MG Oral Tablet"), _BEHAVIORAL),
    _Sensitive(("F11.20", "Opioid dependence, uncomplicated"),
               ("ETH", "substance abuse information sensitivity"), 18, 120, None,
               ("1010604", "buprenorphine 8 MG / naloxone 2 MG Sublingual Film"), _BEHAVIORAL),
    _Sensitive(("B20", "Human immunodeficiency virus [HIV] disease"),
               ("HIV", "HIV/AIDS information sensitivity"), 16, 120, None,
               ("1999667", "bictegravir 50 MG / emtricitabine 200 MG / tenofovir alafenamide 25 MG "
                "Oral Tablet"), _INTERNAL),
    _Sensitive(("F32.9", "Major depressive disorder, single episode, unspecified"),
               ("PSY", "psychiatry information sensitivity"), 12, 120, None,
               ("312938", "sertraline 50 MG Oral Tablet"), _BEHAVIORAL),
    _Sensitive(("Z30.011", "Encounter for initial prescription of contraceptive pills"),
               ("SEX", "sexuality and reproductive health information sensitivity"), 15, 49,
               "female", ("748879", "Levora 0.15/30 28 Day Pack"), _WOMENS),
)  # fmt: skip

# key: (LOINC, display, UCUM unit, category)
_VITALS = {
    "weight": ("29463-7", "Body weight", "kg"),
    "height": ("8302-2", "Body height", "cm"),
    "bmi": ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2"),
    "heart_rate": ("8867-4", "Heart rate", "/min"),
    "temperature": ("8310-5", "Body temperature", "Cel"),
    "spo2": ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%"),
}
# key: (LOINC, display, UCUM unit, normal range, abnormal range)
_LABS = {
    "a1c": ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", (4.8, 5.6), (6.5, 9.5)),
    "cholesterol": ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL",
                    (140, 199), (200, 280)),
    "glucose": ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", (70, 99),
                (126, 220)),
    "creatinine": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL",
                   (0.6, 1.2), (1.3, 2.4)),
    "tsh": ("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", (0.5, 4.5),
            (4.6, 9.8)),
}  # fmt: skip

_ALLERGIES = (
    (("91936005", "Allergy to penicillin"), "medication", ("126485001", "Urticaria")),
    (("91935009", "Allergy to peanuts"), "food", ("39579001", "Anaphylaxis")),
    (("300913006", "Shellfish allergy"), "food", ("126485001", "Urticaria")),
    (("418689008", "Allergy to grass pollen"), "environment", ("61582004", "Allergic rhinitis")),
    (("232350006", "House dust mite allergy"), "environment", ("61582004", "Allergic rhinitis")),
)

_FLU = ("140", "Influenza, seasonal, injectable, preservative free")
_COVID = ("213", "SARS-COV-2 (COVID-19) vaccine, UNSPECIFIED FORMULATION")
_INFANT_SCHEDULE = (  # (days after birth, CVX)
    (0, ("08", "Hep B, adolescent or pediatric")),
    (61, ("20", "DTaP")), (61, ("10", "IPV")), (61, ("49", "Hib (PRP-OMP)")),
    (61, ("133", "Pneumococcal conjugate PCV 13")),
    (122, ("20", "DTaP")), (122, ("10", "IPV")), (122, ("49", "Hib (PRP-OMP)")),
    (122, ("133", "Pneumococcal conjugate PCV 13")),
    (183, ("20", "DTaP")), (183, ("08", "Hep B, adolescent or pediatric")),
    (365, ("03", "MMR")), (365, ("21", "varicella")), (365, ("83", "Hep A, ped/adol, 2 dose")),
    (456, ("20", "DTaP")), (456, ("133", "Pneumococcal conjugate PCV 13")),
)  # fmt: skip
_ADOLESCENT = (("115", "Tdap"), ("165", "HPV9"), ("114", "meningococcal MCV4P"))
_SENIOR = (("187", "zoster vaccine recombinant"), ("33", "pneumococcal polysaccharide PPV23"))

_PREVENTIVE_CPT = (  # (age below, CPT)
    (1, ("99391", "Preventive visit, established patient, infant")),
    (5, ("99392", "Preventive visit, established patient, age 1-4")),
    (12, ("99393", "Preventive visit, established patient, age 5-11")),
    (18, ("99394", "Preventive visit, established patient, age 12-17")),
    (40, ("99395", "Preventive visit, established patient, age 18-39")),
    (65, ("99396", "Preventive visit, established patient, age 40-64")),
    (999, ("99397", "Preventive visit, established patient, age 65+")),
)
_VISIT_CPT = {
    "followup": ("99214", "Office visit, established patient, moderate complexity"),
    "acute": ("99213", "Office visit, established patient, low complexity"),
    "er": ("99284", "Emergency department visit, moderate severity"),
    "sensitive": ("99214", "Office visit, established patient, moderate complexity"),
}
_ENCOUNTER_TYPE = {  # SNOMED CT
    "wellness": ("162673000", "General examination of patient (procedure)"),
    "well_child": ("410620009", "Well child visit (procedure)"),
    "followup": ("390906007", "Follow-up encounter (procedure)"),
    "acute": ("185345009", "Encounter for symptom (procedure)"),
    "er": ("50849002", "Emergency room admission (procedure)"),
    "sensitive": ("185347001", "Encounter for problem (procedure)"),
}
_VENIPUNCTURE = ("36415", "Routine venipuncture")
_DEPRESSION_SCREEN = ("171207006", "Depression screening (procedure)")

# Provider directory shared by every payer file (same NPIs everywhere, as in real networks).
_PROVIDER_ORGS = (
    "Riverbend Family Medicine", "Summit Internal Medicine", "Maple Street Health Center",
    "Lakeside Pediatrics", "Crossroads Urgent Care", "St. Brigid Regional Medical Center",
    "Harbor Behavioral Health", "Westside Women's Health",
)  # fmt: skip
_PEDIATRICS, _URGENT_CARE, _HOSPITAL = 3, 4, 5
_PRACTITIONERS = (  # (family, given, gender, org index)
    ("Okafor", "Adaeze", "female", 0), ("Lindqvist", "Erik", "male", 0),
    ("Ramírez", "Sofía", "female", 1), ("Chen", "David", "male", 1),
    ("O'Connell", "Bridget", "female", 2), ("Patel", "Anil", "male", 2),
    ("Nakamura", "Emi", "female", 3), ("Brooks", "Marcus", "male", 3),
    ("Haddad", "Layla", "female", 4), ("Kowalski", "Piotr", "male", 4),
    ("Nguyen", "Thanh", "male", 5), ("Friedman", "Rachel", "female", 5),
    ("Castillo", "Marisol", "female", 6), ("Whitaker", "James", "male", 6),
    ("Delacroix", "Amélie", "female", 7), ("Abara", "Chioma", "female", 7),
)  # fmt: skip
_ORG_PRACTITIONERS = tuple(
    tuple(index for index, row in enumerate(_PRACTITIONERS) if row[3] == org)
    for org in range(len(_PROVIDER_ORGS))
)


# --- payer context ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PayerContext:
    payer: PayerProfile
    payer_index: int
    payer_count: int
    abbr: str  # id prefix in the file: "pa" for payer-a
    seed: int
    as_of: date
    today: int  # as_of ordinal
    window_days: int

    @property
    def org_id(self) -> str:
        return f"{self.abbr}-org-payer"


def _payer_context(
    network: Network, payer: PayerProfile, seed: int, as_of: date, history_years: int = 3
) -> _PayerContext:
    if payer not in network.payers:
        raise InvalidInput("the payer is not one of the network's old payers")
    if history_years < 0:
        raise InvalidInput("history_years must not be negative")
    index = network.payers.index(payer)
    return _PayerContext(
        payer=payer,
        payer_index=index,
        payer_count=len(network.payers),
        abbr="p" + _letters(index),
        seed=derive_seed(seed, payer.slug),
        as_of=as_of,
        today=as_of.toordinal(),
        window_days=round(history_years * 365.25),
    )


def generate_payer_population(
    network: Network,
    payer: PayerProfile,
    members: int,
    seed: int,
    as_of: date,
    history_years: int = 3,
) -> Iterator[Resource]:
    """Stream one old payer's file: the directory, then household after household.

    Within a household: Patients, Coverages, each member's history, then one
    Provenance per member, so a streaming importer meets referenced resources
    first. Memory does not grow with ``members``.
    """
    if members < 0:
        raise InvalidInput("members must not be negative")
    ctx = _payer_context(network, payer, seed, as_of, history_years)
    return _stream(ctx, members)


def _stream(ctx: _PayerContext, members: int) -> Iterator[Resource]:
    yield from _directory(ctx)
    for household in _households(ctx, members):
        yield from _household_resources(ctx, household)


# --- households ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Member:
    pos: int
    relationship: str
    given: tuple[str, ...]
    family: str
    gender: str
    birth_date: date
    phone: str
    phone_use: str
    has_sensitive_care: bool
    patient_id: str
    member_id: str
    umb: str
    coverage_start: date


@dataclass(frozen=True, slots=True)
class _Household:
    index: int
    lines: tuple[str, ...]
    place: Place
    subscriber_id: str
    group: _Code
    plan: _Code
    is_medicare: bool
    clinic: int
    members: tuple[_Member, ...]


@dataclass(slots=True)
class _Person:
    relationship: str
    gender: str
    birth: int  # ordinal
    family: str
    given: tuple[str, ...] = ()


def _households(ctx: _PayerContext, members: int) -> Iterator[_Household]:
    """Households in file order; the last one is cut short to give exactly ``members``."""
    index, remaining = 0, members
    while remaining > 0:
        household = _build_household(ctx, index)
        if len(household.members) > remaining:
            household = replace(household, members=household.members[:remaining])
        remaining -= len(household.members)
        index += 1
        yield household


def _build_household(ctx: _PayerContext, index: int) -> _Household:
    """Household ``index`` of this payer, rebuilt from its own seed alone."""
    r = random.Random(derive_seed(ctx.seed, "household", index)).random
    place = _PLACES[int(r() * len(_PLACES))]
    lines = _street_lines(r)
    home_phone = _phone(place.area_code, r)
    people = _people(ctx.today, r)
    for person in people:
        person.given = _given_names(r, person.gender, person.relationship == "child")
    _rename_twins(r, people)
    start = _household_coverage_start(ctx.as_of, r)
    members = tuple(
        _member(ctx, index, pos, person, home_phone, place.area_code, start, r)
        for pos, person in enumerate(people)
    )
    prefix = ctx.payer.member_id_prefix
    is_medicare = (ctx.today - people[0].birth) >= 65 * 365.25
    if is_medicare:
        group = (f"{prefix}-MA{int(r() * 5) + 1:02d}", "Medicare Advantage")
        plan = ("MA-PPO", "Medicare Advantage PPO")
    else:
        employer = int(r() * len(_EMPLOYERS))
        group = (f"{prefix}-{1001 + employer}", _EMPLOYERS[employer])
        plan = _COMMERCIAL_PLANS[int(r() * len(_COMMERCIAL_PLANS))]
    return _Household(
        index=index,
        lines=lines,
        place=place,
        subscriber_id=members[0].member_id,
        group=group,
        plan=plan,
        is_medicare=is_medicare,
        clinic=int(r() * 3),
        members=members,
    )


def _people(today: int, r: _Draw) -> list[_Person]:
    family = _skewed(r, _SURNAMES)
    age = _adult_age(r)
    gender = "female" if r() < 0.52 else "male"
    people = [_Person("self", gender, _birth(today, age, r), family)]
    youngest = age
    if r() < (0.3 if age < 25 else 0.62 if age < 75 else 0.45):
        spouse_age = min(95, max(18, age + int((r() - 0.5) * 12)))
        youngest = min(youngest, spouse_age)
        other = "male" if gender == "female" else "female"
        spouse_gender = other if r() < 0.95 else gender
        roll = r()
        if roll < 0.80:
            spouse_family = family
        elif roll < 0.92:
            spouse_family = _skewed(r, _SURNAMES)
        else:
            spouse_family = f"{_skewed(r, _SURNAMES)}-{family}"
        people.append(_Person("spouse", spouse_gender, _birth(today, spouse_age, r), spouse_family))
    people.extend(_children(today, youngest, family, r))
    return people


def _children(today: int, parent_age: int, family: str, r: _Draw) -> list[_Person]:
    wanted = _children_count(parent_age, r)
    oldest = min(25, parent_age - 18)
    children: list[_Person] = []
    while len(children) < wanted:
        birth = _birth(today, int(r() * (oldest + 1)), r)
        gender = "female" if r() < 0.49 else "male"
        children.append(_Person("child", gender, birth, family))
        if len(children) < 4 and r() < 0.012:  # about 1% of births are twins
            other = "male" if gender == "female" else "female"
            children.append(_Person("child", gender if r() < 0.65 else other, birth, family))
    children.sort(key=lambda child: child.birth)
    return children


def _children_count(parent_age: int, r: _Draw) -> int:
    if parent_age < 20:
        return 0
    if parent_age < 25:
        weights: tuple[float, ...] = (0.75, 0.18, 0.07)
    elif parent_age <= 50:
        weights = (0.36, 0.2, 0.25, 0.13, 0.06)
    elif parent_age <= 60:
        weights = (0.65, 0.2, 0.1, 0.04, 0.01)
    else:
        weights = (0.96, 0.04)
    roll = r()
    for count, weight in enumerate(weights):
        roll -= weight
        if roll < 0:
            return count
    return 0


def _rename_twins(r: _Draw, people: list[_Person]) -> None:
    """Twins share birth date and surname, never a first name; some share an initial."""
    for first, second in zip(people, people[1:], strict=False):
        if second.relationship != "child" or first.relationship != "child":
            continue
        if first.birth != second.birth:
            continue
        names = _FEMALE_NAMES if second.gender == "female" else _MALE_NAMES
        if r() < 0.3:
            names = tuple(name for name in names if name[0] == first.given[0][0]) or names
        for _ in range(16):
            candidate = names[int(r() * len(names))]
            if candidate not in first.given and candidate not in second.given[1:]:
                second.given = (candidate, *second.given[1:])
                break


def _member(
    ctx: _PayerContext,
    index: int,
    pos: int,
    person: _Person,
    home_phone: str,
    area_code: str,
    household_start: date,
    r: _Draw,
) -> _Member:
    age = (ctx.today - person.birth) / 365.25
    phone, use = home_phone, "home"
    if (person.relationship == "spouse" and r() < 0.5) or (pos > 1 and age >= 14 and r() < 0.6):
        phone, use = _phone(area_code, r), "mobile"
    number = index * 8 + pos
    member_no = (number * 738_219_461 + 104_729_357 + ctx.payer_index * 7919) % 10**9
    umb_no = (number * 521_830_497 + 7_771_113) % 10**9
    birth_date = date.fromordinal(person.birth)
    return _Member(
        pos=pos,
        relationship=person.relationship,
        given=person.given,
        family=person.family,
        gender=person.gender,
        birth_date=birth_date,
        phone=phone,
        phone_use=use,
        has_sensitive_care=age >= 12 and r() < 0.035,
        patient_id=f"{ctx.abbr}-pat-{index:07d}-{pos}",
        member_id=f"{ctx.payer.member_id_prefix}{member_no:09d}",
        umb=f"U{umb_no:09d}",
        coverage_start=max(household_start, birth_date),
    )


def _skewed(r: _Draw, names: tuple[str, ...]) -> str:
    roll = r()
    return names[int(roll * roll * len(names))]


def _given_names(r: _Draw, gender: str, is_child: bool) -> tuple[str, ...]:
    names = _FEMALE_NAMES if gender == "female" else _MALE_NAMES
    first = _skewed(r, names)
    if r() < (0.6 if is_child else 0.4):
        middle = names[int(r() * len(names))]
        if middle != first:
            return (first, middle)
    return (first,)


def _adult_age(r: _Draw) -> int:
    roll = r()
    for low, high, share in _ADULT_AGE_BANDS:
        if roll < share:
            return low + int(r() * (high - low + 1))
        roll -= share
    return 65 + int(r() ** 1.5 * 26)  # 65..90, fewer at the top


def _birth(today: int, age: int, r: _Draw) -> int:
    return today - int(age * 365.2425) - int(r() * 365)


def _street_lines(r: _Draw) -> tuple[str, ...]:
    number = 1 + int(r() ** 1.6 * 9899)
    direction = "NSEW"[int(r() * 4)] + " " if r() < 0.12 else ""
    street = _STREETS[int(r() * len(_STREETS))]
    suffix = _STREET_SUFFIXES[int(r() * len(_STREET_SUFFIXES))]
    first = f"{number} {direction}{street} {suffix}"
    if r() >= 0.22:
        return (first,)
    style = r()
    if style < 0.5:
        unit = f"Apt {1 + int(r() * 12)}{'ABCDEF'[int(r() * 6)]}"
    elif style < 0.8:
        unit = f"Apt {100 * (1 + int(r() * 6)) + 1 + int(r() * 20)}"
    else:
        unit = f"Unit {1 + int(r() * 40)}"
    return (first, unit)


def _phone(area_code: str, r: _Draw) -> str:
    return f"{area_code}-555-{int(r() * 10000):04d}"


def _household_coverage_start(as_of: date, r: _Draw) -> date:
    months = as_of.year * 12 + as_of.month - 1 - (3 + int(r() ** 1.3 * 140))
    return date(months // 12, months % 12 + 1, 1)


# --- FHIR shapes --------------------------------------------------------------


def _ref(reference: str) -> dict[str, str]:
    return {"reference": reference}


def _concept(system: str, code: _Code) -> dict[str, object]:
    return {"coding": [{"system": system, "code": code[0], "display": code[1]}]}


def _status(system: str, code: str) -> dict[str, object]:
    return {"coding": [{"system": _TERMINOLOGY + system, "code": code}]}


def _npi_identifier(npi: str) -> list[dict[str, str]]:
    return [{"system": NPI_SYSTEM, "value": npi}]


def _mb_type() -> dict[str, object]:
    return {"coding": [{"system": _V2_0203, "code": "MB", "display": "Member Number"}]}


def _day(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


def _stamp(ordinal: int, minute: int, offset: str) -> str:
    """Local date-time ``minute`` minutes after midnight of ``ordinal`` (may roll over)."""
    days, minute = divmod(minute, 1440)
    hour, minute = divmod(minute, 60)
    return f"{date.fromordinal(ordinal + days).isoformat()}T{hour:02d}:{minute:02d}:00{offset}"


def _directory(ctx: _PayerContext) -> Iterator[Resource]:
    yield {
        "resourceType": "Organization",
        "id": ctx.org_id,
        "identifier": _npi_identifier(ctx.payer.npi),
        "active": True,
        "type": [_concept(_TERMINOLOGY + "organization-type", ("pay", "Payer"))],
        "name": ctx.payer.name,
    }
    for index, name in enumerate(_PROVIDER_ORGS):
        yield {
            "resourceType": "Organization",
            "id": f"{ctx.abbr}-org-{index + 1:02d}",
            "identifier": _npi_identifier(_npi(_NPI_PROVIDER_ORG, index)),
            "active": True,
            "type": [_concept(_TERMINOLOGY + "organization-type", ("prov", "Healthcare Provider"))],
            "name": name,
        }
    for index, (family, given, gender, _org) in enumerate(_PRACTITIONERS):
        yield {
            "resourceType": "Practitioner",
            "id": f"{ctx.abbr}-prac-{index + 1:02d}",
            "identifier": _npi_identifier(_npi(_NPI_PRACTITIONER, index)),
            "active": True,
            "name": [{"family": family, "given": [given], "prefix": ["Dr."]}],
            "gender": gender,
        }


def _household_resources(ctx: _PayerContext, household: _Household) -> Iterator[Resource]:
    for member in household.members:
        yield _patient(ctx, household, member)
    for member in household.members:
        yield _coverage(ctx, household, member)
    targets: list[list[str]] = []
    for member in household.members:
        history = _Chart(ctx, household, member).build()
        yield from history
        targets.append([f"{resource['resourceType']}/{resource['id']}" for resource in history])
    for member, history_refs in zip(household.members, targets, strict=True):
        yield _provenance(ctx, household, member, history_refs)


def _patient(ctx: _PayerContext, household: _Household, member: _Member) -> Resource:
    slug = ctx.payer.slug
    return {
        "resourceType": "Patient",
        "id": member.patient_id,
        "identifier": [
            {"type": _mb_type(), "system": f"http://{slug}.example.org/member-id",
             "value": member.member_id},
            {"type": _concept(_HREX_TEMP, _UMB), "system": f"http://{slug}.example.org/umb",
             "value": member.umb},
        ],
        "active": True,
        "name": [{"use": "official", "family": member.family, "given": list(member.given)}],
        "telecom": [{"system": "phone", "value": member.phone, "use": member.phone_use}],
        "gender": member.gender,
        "birthDate": member.birth_date.isoformat(),
        "address": [{
            "use": "home",
            "line": list(household.lines),
            "city": household.place.city,
            "state": household.place.state,
            "postalCode": household.place.postal_code,
            "country": "US",
        }],
    }  # fmt: skip


def _coverage(ctx: _PayerContext, household: _Household, member: _Member) -> Resource:
    subscriber = f"Patient/{household.members[0].patient_id}"
    payer_type = ("1", "MEDICARE") if household.is_medicare else ("5", "PRIVATE HEALTH INSURANCE")
    return {
        "resourceType": "Coverage",
        "id": f"{ctx.abbr}-cov-{household.index:07d}-{member.pos}",
        "identifier": [{"type": _mb_type(), "system": f"http://{ctx.payer.slug}.example.org/member-id",
                        "value": member.member_id}],
        "status": "active",
        "type": _concept(_SOPT, payer_type),
        "policyHolder": _ref(subscriber),
        "subscriber": _ref(subscriber),
        "subscriberId": household.subscriber_id,
        "beneficiary": _ref(f"Patient/{member.patient_id}"),
        "dependent": f"{member.pos:02d}",
        "relationship": {"coding": [{"system": _TERMINOLOGY + "subscriber-relationship",
                                     "code": member.relationship}]},
        "period": {"start": member.coverage_start.isoformat()},
        "payor": [{"reference": f"Organization/{ctx.org_id}",
                   "identifier": {"system": NPI_SYSTEM, "value": ctx.payer.npi},
                   "display": ctx.payer.name}],
        "class": [
            {"type": _status("coverage-class", "group"), "value": household.group[0],
             "name": household.group[1]},
            {"type": _status("coverage-class", "plan"), "value": household.plan[0],
             "name": household.plan[1]},
        ],
    }  # fmt: skip


def _provenance(
    ctx: _PayerContext, household: _Household, member: _Member, history_refs: list[str]
) -> Resource:
    payer = f"Organization/{ctx.org_id}"
    coverage = f"Coverage/{ctx.abbr}-cov-{household.index:07d}-{member.pos}"
    own = [f"Patient/{member.patient_id}", coverage]
    return {
        "resourceType": "Provenance",
        "id": f"{ctx.abbr}-provenance-{household.index:07d}-{member.pos}",
        "target": [_ref(reference) for reference in own + history_refs],
        "recorded": f"{ctx.as_of.isoformat()}T00:00:00Z",
        "agent": [
            {"type": _concept(_TERMINOLOGY + "provenance-participant-type", ("author", "Author")),
             "who": _ref(payer)},
            {"type": _concept("http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type",
                              ("transmitter", "Transmitter")),
             "role": [{"coding": [{"system": _TERMINOLOGY + "contractsignertypecodes",
                                   "code": "TRANS"}]}],
             "who": _ref(payer)},
        ],
    }  # fmt: skip


# --- clinical history ---------------------------------------------------------


class _Chart:
    """One member's history over the window, built visit by visit from its own seed."""

    def __init__(self, ctx: _PayerContext, household: _Household, member: _Member) -> None:
        self.ctx = ctx
        self.household = household
        self.member = member
        self.r = random.Random(derive_seed(ctx.seed, "history", household.index, member.pos)).random
        self.out: list[Resource] = []
        self.seq = 0
        self.suffix = f"-{household.index:07d}-{member.pos}-"
        self.patient = f"Patient/{member.patient_id}"
        self.coverage = f"Coverage/{ctx.abbr}-cov-{household.index:07d}-{member.pos}"
        self.birth = member.birth_date.toordinal()
        self.offset = household.place.utc_offset
        self.chronic: list[_Chronic] = []
        self.chronic_ids: dict[str, str] = {}
        self.last_fill: dict[str, int] = {}
        self.sensitive: _Sensitive | None = None
        self.sensitive_condition: str | None = None
        self.recorded_problems = False
        self.has_allergy = False
        self.pa_done = False
        self.physique = (1.0, 1.0)

    # -- plan

    def build(self) -> list[Resource]:
        start = max(self.ctx.today - self.ctx.window_days, self.member.coverage_start.toordinal())
        end = self.ctx.today
        if end <= start:
            return self.out
        self._profile()
        for day, kind in self._plan(start, end):
            self._visit(day, kind)
        self._immunizations(start, end)
        return self.out

    def _age(self, day: int) -> float:
        return (day - self.birth) / 365.25

    def _profile(self) -> None:
        r, age, gender = self.r, self._age(self.ctx.today), self.member.gender
        for chronic in _CHRONIC:
            if age < chronic.min_age or chronic.sex not in (None, gender):
                continue
            if r() < min(chronic.cap, chronic.base + chronic.slope * (age - chronic.min_age)):
                self.chronic.append(chronic)
        self.physique = (0.93 + r() * 0.14, min(45.0, max(17.5, 27.0 + (r() - 0.5) * 14)))
        if age >= 18 and self.physique[1] >= 30 and r() < 0.6:
            self.chronic.append(_Chronic(_OBESITY, 18, 0, 0, 0, None, None, None, None))
        self.has_allergy = r() < 0.12
        if self.member.has_sensitive_care:
            fits = [
                s for s in _SENSITIVE if s.min_age <= age <= s.max_age and s.sex in (None, gender)
            ]
            self.sensitive = fits[int(r() * len(fits))] if fits else None

    def _plan(self, start: int, end: int) -> list[tuple[int, str]]:
        r, visits = self.r, []
        year = start
        while year < end:
            span = min(365, end - year)
            share, age = span / 365, self._age(year)
            well_share = 0.8 if age < 18 else 0.6 if age < 65 else 0.75
            wellness = 3 if age < 2 else int(r() < well_share)
            counts = (
                ("wellness", round(wellness * share)),
                ("followup", int(min(len(self.chronic), 2) * share + r())),
                ("acute", int((1.0 if age < 12 else 0.6 if age < 65 else 0.8) * share + r())),
                ("er", int(r() < 0.06 * share)),
                ("sensitive", int(self.sensitive is not None and r() < 0.8 * share + 0.2)),
            )
            for kind, count in counts:
                visits += [(year + int(r() * span), kind) for _ in range(count)]
            year += span
        visits.sort()
        return visits

    # -- one visit

    def _visit(self, day: int, kind: str) -> None:
        r, age = self.r, self._age(day)
        org_index = self._org(kind, age)
        org = f"{self.ctx.abbr}-org-{org_index + 1:02d}"
        staff = _ORG_PRACTITIONERS[org_index]
        practitioner = f"{self.ctx.abbr}-prac-{staff[int(r() * len(staff))] + 1:02d}"
        er = kind == "er"
        begin = int(r() * 1440) if er else 8 * 60 + int(r() * 36) * 15
        length = 120 + int(r() * 240) if er else 20 + int(r() * 4) * 10
        labels = self.sensitive.label if kind == "sensitive" and self.sensitive else None
        encounter = self._id("enc")
        when = _stamp(day, begin, self.offset)
        type_key = "well_child" if kind == "wellness" and age < 18 else kind
        self._add({
            "resourceType": "Encounter",
            "id": encounter,
            "status": "finished",
            "class": {"system": _ACT_CODE, "code": "EMER" if er else "AMB",
                      "display": "emergency" if er else "ambulatory"},
            "type": [_concept(_SNOMED, _ENCOUNTER_TYPE[type_key])],
            "subject": _ref(self.patient),
            "participant": [{"individual": _ref(f"Practitioner/{practitioner}")}],
            "period": {"start": when, "end": _stamp(day, begin + length, self.offset)},
            "serviceProvider": _ref(f"Organization/{org}"),
        }, labels)  # fmt: skip
        visit = _Visit(day, when, encounter, org, practitioner)
        if kind != "sensitive" and not self.recorded_problems:
            self._record_problems(visit)
        if kind == "wellness":
            self._wellness(visit, age)
        elif kind == "followup":
            self._followup(visit)
        elif kind == "sensitive" and self.sensitive:
            self._sensitive_visit(visit, self.sensitive)
        else:
            self._problem_visit(visit, age, er)
        self._claim(visit, labels)
        for authorization, diagnosis in visit.authorizations:
            self._prior_authorization(visit, authorization, diagnosis)

    def _org(self, kind: str, age: float) -> int:
        if kind == "er":
            return _HOSPITAL
        if kind == "sensitive" and self.sensitive:
            return self.sensitive.org
        if age < 18:
            return _PEDIATRICS
        if kind == "acute" and self.r() < 0.4:
            return _URGENT_CARE
        return self.household.clinic

    def _record_problems(self, visit: _Visit) -> None:
        """Chronic conditions (onset before the window) and allergies enter at the first visit."""
        self.recorded_problems = True
        r = self.r
        for chronic in self.chronic:
            earliest = self.birth + chronic.min_age * 365
            onset = min(visit.day, max(earliest, visit.day - 365 - int(r() * 3000)))
            condition = self._condition(visit, chronic.code, onset, "problem-list-item")
            self.chronic_ids[chronic.code[0]] = condition
            visit.diagnoses.append(chronic.code)
        if self.has_allergy:
            code, category, reaction = _ALLERGIES[int(r() * len(_ALLERGIES))]
            self._add({
                "resourceType": "AllergyIntolerance",
                "id": self._id("allergy"),
                "clinicalStatus": _status("allergyintolerance-clinical", "active"),
                "verificationStatus": _status("allergyintolerance-verification", "confirmed"),
                "type": "allergy",
                "category": [category],
                "criticality": "high" if reaction[0] == "39579001" else "low",
                "code": _concept(_SNOMED, code),
                "patient": _ref(self.patient),
                "encounter": _ref(f"Encounter/{visit.encounter}"),
                "recordedDate": visit.when,
                "reaction": [{"manifestation": [_concept(_SNOMED, reaction)]}],
            })  # fmt: skip

    def _wellness(self, visit: _Visit, age: float) -> None:
        r = self.r
        cpt = next(code for below, code in _PREVENTIVE_CPT if age < below)
        visit.items.append(cpt)
        visit.diagnoses.append(("Z00.129", "Encounter for routine child health examination "
                                "without abnormal findings") if age < 18 else
                               ("Z00.00", "Encounter for general adult medical examination "
                                "without abnormal findings"))  # fmt: skip
        self._vital(visit, "weight", self._weight(age))
        if age < 18:
            self._vital(visit, "height", self._height(age))
        elif r() < 0.6:
            self._vital(visit, "bmi", self.physique[1] * (0.97 + r() * 0.06))
        if age >= 3:
            self._blood_pressure(visit)
        if age >= 40 and r() < 0.5:
            self._lab(visit, "cholesterol", any(c.lab == "cholesterol" for c in self.chronic))
            self._lab(visit, "glucose", any(c.lab == "a1c" for c in self.chronic))
            self._procedure(visit, _CPT, _VENIPUNCTURE)
        if age >= 12 and r() < 0.3:
            self._procedure(visit, _SNOMED, _DEPRESSION_SCREEN, bill=False)

    def _followup(self, visit: _Visit) -> None:
        r = self.r
        visit.items.append(_VISIT_CPT["followup"])
        self._blood_pressure(visit)
        if r() < 0.3:
            self._vital(visit, "weight", self._weight(self._age(visit.day)))
        drew_blood = False
        for chronic in self.chronic:
            visit.diagnoses.append(chronic.code)
            if chronic.lab and r() < 0.5:
                self._lab(visit, chronic.lab, True)
                drew_blood = True
            if chronic.medication:
                self._refill(visit, chronic.medication, self.chronic_ids.get(chronic.code[0]), None)
            if chronic.authorization and not self.pa_done and r() < 0.1:
                visit.authorizations.append((chronic.authorization, chronic.code))
                self.pa_done = True
        if drew_blood:
            self._procedure(visit, _CPT, _VENIPUNCTURE)

    def _problem_visit(self, visit: _Visit, age: float, er: bool) -> None:
        r = self.r
        pool = [p for p in (_EMERGENCIES if er else _PROBLEMS) if p.min_age <= age <= p.max_age]
        problem = _weighted(r, pool)
        visit.items.append(_VISIT_CPT["er" if er else "acute"])
        visit.diagnoses.append(problem.code)
        self._vital(visit, "temperature", 36.4 + r() * (2.6 if problem.code[0][0] in "JH" else 0.9))
        if er or r() < 0.3:
            self._vital(visit, "heart_rate", (95 if age < 12 else 62) + r() * 35)
        if er:
            self._blood_pressure(visit)
            self._vital(visit, "spo2", 94 + r() * 5)
        condition = self._condition(visit, problem.code, visit.day, "encounter-diagnosis",
                                    resolved_after=7 + int(r() * 21))  # fmt: skip
        if problem.medication and r() < 0.7:
            self._medication(visit, problem.medication, condition, "completed", None)
        if problem.procedure:
            self._procedure(visit, _CPT, problem.procedure)
        if problem.authorization and r() < 0.35:
            visit.authorizations.append((problem.authorization, problem.code))

    def _sensitive_visit(self, visit: _Visit, sensitive: _Sensitive) -> None:
        visit.items.append(_VISIT_CPT["sensitive"])
        visit.diagnoses.append(sensitive.code)
        if self.sensitive_condition is None:
            self.sensitive_condition = self._condition(
                visit, sensitive.code, visit.day, "problem-list-item", labels=sensitive.label
            )
        self._refill(visit, sensitive.medication, self.sensitive_condition, sensitive.label)

    # -- resources

    def _id(self, kind: str) -> str:
        self.seq += 1
        return f"{self.ctx.abbr}-{kind}{self.suffix}{self.seq}"

    def _add(self, resource: Resource, labels: _Code | None = None) -> None:
        if labels:
            resource["meta"] = {"security": [
                {"system": _ACT_CODE, "code": labels[0], "display": labels[1]},
                {"system": _CONFIDENTIALITY, "code": "R", "display": "restricted"},
            ]}  # fmt: skip
        self.out.append(resource)

    def _condition(
        self,
        visit: _Visit,
        code: _Code,
        onset: int,
        category: str,
        resolved_after: int | None = None,
        labels: _Code | None = None,
    ) -> str:
        condition = self._id("cond")
        resource: Resource = {
            "resourceType": "Condition",
            "id": condition,
            "clinicalStatus": _status(
                "condition-clinical", "resolved" if resolved_after else "active"
            ),
            "verificationStatus": _status("condition-ver-status", "confirmed"),
            "category": [_status("condition-category", category)],
            "code": _concept(_ICD10, code),
            "subject": _ref(self.patient),
            "encounter": _ref(f"Encounter/{visit.encounter}"),
            "onsetDateTime": _day(onset),
            "recordedDate": visit.when,
        }
        if resolved_after:
            resource["abatementDateTime"] = _day(min(onset + resolved_after, self.ctx.today))
        self._add(resource, labels)
        return condition

    def _vital(self, visit: _Visit, key: str, value: float) -> None:
        loinc, display, unit = _VITALS[key]
        self._observation(visit, "vital-signs", (loinc, display), {
            "valueQuantity": {"value": round(value, 1), "unit": unit, "system": _UCUM, "code": unit}
        })  # fmt: skip

    def _blood_pressure(self, visit: _Visit) -> None:
        r = self.r
        high = any(c.code[0] == "I10" for c in self.chronic) * 18
        systolic, diastolic = 104 + high + int(r() * 30), 64 + high // 2 + int(r() * 20)
        components = [
            {"code": _concept(_LOINC, ("8480-6", "Systolic blood pressure")),
             "valueQuantity": {"value": systolic, "unit": "mm[Hg]", "system": _UCUM,
                               "code": "mm[Hg]"}},
            {"code": _concept(_LOINC, ("8462-4", "Diastolic blood pressure")),
             "valueQuantity": {"value": diastolic, "unit": "mm[Hg]", "system": _UCUM,
                               "code": "mm[Hg]"}},
        ]  # fmt: skip
        code = ("85354-9", "Blood pressure panel with all children optional")
        self._observation(visit, "vital-signs", code, {"component": components})

    def _lab(self, visit: _Visit, key: str, abnormal: bool) -> None:
        loinc, display, unit, normal, high = _LABS[key]
        low, top = high if abnormal else normal
        value = round(low + self.r() * (top - low), 1)
        self._observation(visit, "laboratory", (loinc, display), {
            "valueQuantity": {"value": value, "unit": unit, "system": _UCUM, "code": unit}
        })  # fmt: skip

    def _observation(
        self, visit: _Visit, category: str, code: _Code, value: dict[str, object]
    ) -> None:
        display = "Vital Signs" if category == "vital-signs" else "Laboratory"
        self._add({
            "resourceType": "Observation",
            "id": self._id("obs"),
            "status": "final",
            "category": [_concept(_TERMINOLOGY + "observation-category", (category, display))],
            "code": _concept(_LOINC, code),
            "subject": _ref(self.patient),
            "encounter": _ref(f"Encounter/{visit.encounter}"),
            "effectiveDateTime": visit.when,
            **value,
        })  # fmt: skip

    def _refill(
        self, visit: _Visit, medication: _Code, condition: str | None, labels: _Code | None
    ) -> None:
        """Chronic prescriptions are renewed about once a year; the latest one stays active."""
        last = self.last_fill.get(medication[0])
        if last is not None and visit.day - last < 330:
            return
        self.last_fill[medication[0]] = visit.day
        status = "active" if self.ctx.today - visit.day < 330 else "completed"
        self._medication(visit, medication, condition, status, labels)

    def _medication(
        self,
        visit: _Visit,
        medication: _Code,
        condition: str | None,
        status: str,
        labels: _Code | None,
    ) -> None:
        resource: Resource = {
            "resourceType": "MedicationRequest",
            "id": self._id("medrx"),
            "status": status,
            "intent": "order",
            "medicationCodeableConcept": _concept(_RXNORM, medication),
            "subject": _ref(self.patient),
            "encounter": _ref(f"Encounter/{visit.encounter}"),
            "authoredOn": visit.when,
            "requester": _ref(f"Practitioner/{visit.practitioner}"),
            "dosageInstruction": [{"text": "Take as directed"}],
        }
        if condition:
            resource["reasonReference"] = [_ref(f"Condition/{condition}")]
        self._add(resource, labels)

    def _procedure(self, visit: _Visit, system: str, code: _Code, bill: bool = True) -> None:
        self._add({
            "resourceType": "Procedure",
            "id": self._id("proc"),
            "status": "completed",
            "code": _concept(system, code),
            "subject": _ref(self.patient),
            "encounter": _ref(f"Encounter/{visit.encounter}"),
            "performedDateTime": visit.when,
        })  # fmt: skip
        if bill:
            visit.items.append(code)

    def _claim(self, visit: _Visit, labels: _Code | None) -> None:
        claim = self._id("eob")
        created = _day(min(visit.day + 3 + int(self.r() * 25), self.ctx.today))
        diagnoses = list(dict.fromkeys(visit.diagnoses))
        serviced = _day(visit.day)
        self._add({
            "resourceType": "ExplanationOfBenefit",
            "id": claim,
            "identifier": [{"system": f"http://{self.ctx.payer.slug}.example.org/claim-id",
                            "value": claim.upper()}],
            "status": "active",
            "type": _concept(_TERMINOLOGY + "claim-type", ("professional", "Professional")),
            "use": "claim",
            "patient": _ref(self.patient),
            "billablePeriod": {"start": serviced, "end": serviced},
            "created": created,
            "insurer": {"reference": f"Organization/{self.ctx.org_id}",
                        "display": self.ctx.payer.name},
            "provider": _ref(f"Organization/{visit.org}"),
            "outcome": "complete",
            "diagnosis": [{"sequence": n, "diagnosisCodeableConcept": _concept(_ICD10, code)}
                          for n, code in enumerate(diagnoses, 1)],
            "insurance": [{"focal": True, "coverage": _ref(self.coverage)}],
            "item": [{"sequence": n, "diagnosisSequence": [1],
                      "productOrService": _concept(_CPT, code), "servicedDate": serviced,
                      "encounter": [_ref(f"Encounter/{visit.encounter}")]}
                     for n, code in enumerate(visit.items, 1)],
        }, labels)  # fmt: skip

    def _prior_authorization(self, visit: _Visit, service: _Code, diagnosis: _Code) -> None:
        r = self.r
        authorization = self._id("priorauth")
        created = min(visit.day + 1 + int(r() * 5), self.ctx.today)
        planned = created + 7 + int(r() * 40)
        self._add({
            "resourceType": "ExplanationOfBenefit",
            "id": authorization,
            "meta": {"profile": [PRIOR_AUTH_PROFILE]},
            "identifier": [{"system": f"http://{self.ctx.payer.slug}.example.org/prior-auth",
                            "value": authorization.upper()}],
            "status": "active",
            "type": _concept(_TERMINOLOGY + "claim-type", ("professional", "Professional")),
            "use": "preauthorization",
            "patient": _ref(self.patient),
            "created": _day(created),
            "insurer": {"reference": f"Organization/{self.ctx.org_id}",
                        "display": self.ctx.payer.name},
            "provider": _ref(f"Organization/{visit.org}"),
            "outcome": "complete",
            "preAuthRef": [authorization.upper()],
            "preAuthRefPeriod": [{"start": _day(created), "end": _day(created + 90)}],
            "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": _concept(_ICD10, diagnosis)}],
            "insurance": [{"focal": True, "coverage": _ref(self.coverage)}],
            "item": [{"sequence": 1, "productOrService": _concept(_CPT, service),
                      "servicedDate": _day(planned), "quantity": {"value": 1}}],
        })  # fmt: skip

    def _immunizations(self, start: int, end: int) -> None:
        r, age_now = self.r, self._age(end)
        first_year = date.fromordinal(start).year
        for year in range(first_year, date.fromordinal(end).year + 1):
            season = date(year, 9, 15).toordinal() + int(r() * 76)
            age = self._age(season)
            if start <= season < end and age >= 0.5:
                if r() < (0.55 if age < 18 else 0.4 if age < 65 else 0.7):
                    self._immunization(season, _FLU)
                if r() < 0.15:
                    self._immunization(min(season + int(r() * 30), end - 1), _COVID)
        for offset, vaccine in _INFANT_SCHEDULE:
            day = self.birth + offset + (int(r() * 10) if offset else 0)
            if start <= day < end:
                self._immunization(day, vaccine)
        adolescent = self.birth + int(11.5 * 365.25) + int(r() * 200)
        if start <= adolescent < end and r() < 0.8:
            for vaccine in _ADOLESCENT:
                self._immunization(adolescent, vaccine)
        if age_now >= 65:
            for vaccine in _SENIOR:
                if r() < 0.25:
                    self._immunization(start + int(r() * (end - start)), vaccine)

    def _immunization(self, day: int, vaccine: _Code) -> None:
        self._add({
            "resourceType": "Immunization",
            "id": self._id("imm"),
            "status": "completed",
            "vaccineCode": _concept(_CVX, vaccine),
            "patient": _ref(self.patient),
            "occurrenceDateTime": _day(day),
            "primarySource": True,
        })  # fmt: skip

    # -- body measurements

    def _height(self, age: float) -> float:
        adult = 176.0 if self.member.gender == "male" else 162.0
        grown = 50 + 25 * age if age < 2 else 87 + 6.2 * (age - 2)
        return min(grown, adult) * self.physique[0]

    def _weight(self, age: float) -> float:
        if age < 18:
            if age < 2:
                grown = 3.4 + 6.5 * age if age < 1 else 9.9 + 2.5 * (age - 1)
            else:
                grown = 12.4 + 3.0 * (age - 2)
            return grown * self.physique[0] * (0.98 + self.r() * 0.04)
        metres = self._height(30) / 100
        return self.physique[1] * metres * metres * (0.98 + self.r() * 0.04)


@dataclass(slots=True)
class _Visit:
    """What one encounter produced so far, for its claim and prior authorizations."""

    day: int
    when: str
    encounter: str
    org: str
    practitioner: str
    items: list[_Code] = field(default_factory=list)
    diagnoses: list[_Code] = field(default_factory=list)
    authorizations: list[tuple[_Code, _Code]] = field(default_factory=list)


def _weighted(r: _Draw, problems: list[_Problem]) -> _Problem:
    roll = r() * sum(problem.weight for problem in problems)
    for problem in problems:
        roll -= problem.weight
        if roll < 0:
            return problem
    return problems[-1]


# --- switchers ----------------------------------------------------------------


def sample_switchers(
    network: Network,
    payer: PayerProfile,
    members: int,
    seed: int,
    as_of: date,
    count: int,
) -> list[dict[str, object]]:
    """Pick ``count`` members of ``payer`` who move to the platform, with their requests.

    Picks alternate subscribers and dependents. Members come from households that
    are complete in every population of ``members`` (indices below members / 6),
    so each pick is rebuilt from its household seed alone; tiny populations are
    walked in full instead. The demographics equal the member's Patient exactly.
    """
    if not 0 <= count <= members:
        raise InvalidInput("count must be between 0 and the number of members")
    ctx = _payer_context(network, payer, seed, as_of)
    r = random.Random(derive_seed(ctx.seed, "switchers")).random
    picks = _pick_switchers(ctx, members, count, random.Random(derive_seed(ctx.seed, "picks")))
    return [
        _switcher(ctx, network, household, member, number, r)
        for number, (household, member) in enumerate(picks, 1)
    ]


def _pick_switchers(
    ctx: _PayerContext, members: int, count: int, rng: random.Random
) -> list[tuple[_Household, _Member]]:
    complete = members // MAX_HOUSEHOLD
    if complete >= count:
        # Households below members / 6 are whole in any population of this size:
        # rebuild a few from their seeds, at most one switcher per household.
        indices = rng.sample(range(complete), min(complete, 4 * count))
        households = [_build_household(ctx, index) for index in indices]
        subscribers = [(h, h.members[0]) for h in reversed(households)]
        dependents = [
            (h, h.members[1 + int(rng.random() * (len(h.members) - 1))])
            for h in reversed(households)
            if len(h.members) > 1
        ]
    else:
        everyone = [(h, m) for h in _households(ctx, members) for m in h.members]
        subscribers = [pair for pair in everyone if pair[1].pos == 0]
        dependents = [pair for pair in everyone if pair[1].pos > 0]
        rng.shuffle(subscribers)
        rng.shuffle(dependents)
    picks: list[tuple[_Household, _Member]] = []
    taken: set[int] = set()
    while len(picks) < count and (subscribers or dependents):
        for pool in (subscribers, dependents):
            while pool and len(picks) < count:
                household, member = pool.pop()
                if complete < count or household.index not in taken:
                    taken.add(household.index)
                    picks.append((household, member))
                    break
    return picks


def _switcher(
    ctx: _PayerContext,
    network: Network,
    household: _Household,
    member: _Member,
    number: int,
    r: _Draw,
) -> dict[str, object]:
    start = ctx.as_of + timedelta(days=1 + int(r() * 30))
    policy = "sensitive" if r() < 0.3 else "regular"
    return {
        "old_payer": ctx.payer.slug,
        "old_patient_id": member.patient_id,
        "request": {
            "old_payer": ctx.payer.slug,
            "member": {
                "given": list(member.given),
                "family": member.family,
                "birth_date": member.birth_date.isoformat(),
                "gender": member.gender,
                "address": {
                    "line": list(household.lines),
                    "city": household.place.city,
                    "state": household.place.state,
                    "postal_code": household.place.postal_code,
                },
                "phone": member.phone,
            },
            "old_coverage": {
                "member_id": member.member_id,
                "subscriber_id": household.subscriber_id,
                "relationship": member.relationship,
            },
            "new_coverage": {
                "member_id": _new_member_id(ctx, network, household.index, member.pos),
                "subscriber_id": _new_member_id(ctx, network, household.index, 0),
                "relationship": member.relationship,
                "start": start.isoformat(),
            },
            "consent": {
                "policy": policy,
                "start": ctx.as_of.isoformat(),
                "end": (ctx.as_of + timedelta(days=90)).isoformat(),
                "source_reference": f"DocumentReference/optin-{ctx.payer.slug}-{number}",
            },
        },
    }


def _new_member_id(ctx: _PayerContext, network: Network, index: int, pos: int) -> str:
    """The platform's member id for a switcher: unique across old payers (affine map)."""
    number = (index * 8 + pos) * ctx.payer_count + ctx.payer_index
    return f"{network.platform.member_id_prefix}{(number * 615_482_913 + 290_011_437) % 10**9:09d}"
