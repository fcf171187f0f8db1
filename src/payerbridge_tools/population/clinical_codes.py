"""Clinical code tables: what members suffer from, and what is measured, given and billed.

Chronic conditions with age- and sex-dependent prevalence, acute and emergency
problems, sensitive care (with its v3-ActCode sensitivity label), vital signs
and labs (LOINC, UCUM, normal and abnormal ranges), allergies, vaccine schedules
(CVX), and the CPT and SNOMED CT codes of visits. Each row keeps its display text.
"""

from __future__ import annotations

from typing import NamedTuple

from payerbridge_tools.population.providers import BEHAVIORAL, INTERNAL, WOMENS
from payerbridge_tools.population.shapes import Code


class Chronic(NamedTuple):
    code: Code  # ICD-10-CM
    min_age: int
    base: float  # prevalence at min_age
    slope: float  # added per year of age
    cap: float
    sex: str | None
    medication: Code | None  # RxNorm
    lab: str | None  # key into LABS
    authorization: Code | None  # CPT that may need prior authorization


class Problem(NamedTuple):
    code: Code  # ICD-10-CM
    min_age: int
    max_age: int
    weight: int
    medication: Code | None
    procedure: Code | None  # CPT done at the visit
    authorization: Code | None


class Sensitive(NamedTuple):
    code: Code
    label: Code  # v3-ActCode information sensitivity
    min_age: int
    max_age: int
    sex: str | None
    medication: Code
    org: int  # index into PROVIDER_ORGS


_AMOXICILLIN = ("308182", "amoxicillin 250 MG Oral Capsule")
_NAPROXEN = ("849574", "naproxen sodium 220 MG Oral Tablet")
_ACETAMINOPHEN = ("313782", "acetaminophen 325 MG Oral Tablet")

CHRONIC = (
    Chronic(
        ("I10", "Essential (primary) hypertension"),
        30,
        0.04,
        0.010,
        0.6,
        None,
        ("314076", "lisinopril 10 MG Oral Tablet"),
        "creatinine",
        None,
    ),
    Chronic(
        ("E78.5", "Hyperlipidemia, unspecified"),
        35,
        0.05,
        0.008,
        0.45,
        None,
        ("312961", "simvastatin 20 MG Oral Tablet"),
        "cholesterol",
        None,
    ),
    Chronic(
        ("E11.9", "Type 2 diabetes mellitus without complications"),
        35,
        0.03,
        0.004,
        0.25,
        None,
        ("860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"),
        "a1c",
        None,
    ),
    Chronic(
        ("J45.909", "Unspecified asthma, uncomplicated"),
        2,
        0.08,
        0.0,
        0.08,
        None,
        ("745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
        None,
        None,
    ),
    Chronic(
        ("E03.9", "Hypothyroidism, unspecified"),
        30,
        0.04,
        0.001,
        0.1,
        "female",
        ("966222", "levothyroxine sodium 0.075 MG Oral Tablet"),
        "tsh",
        None,
    ),
    Chronic(
        ("J30.9", "Allergic rhinitis, unspecified"),
        4,
        0.1,
        0.0,
        0.1,
        None,
        ("1014676", "cetirizine hydrochloride 10 MG Oral Tablet"),
        None,
        None,
    ),
    Chronic(
        ("M17.11", "Unilateral primary osteoarthritis, right knee"),
        50,
        0.05,
        0.004,
        0.15,
        None,
        _NAPROXEN,
        None,
        ("27447", "Total knee arthroplasty"),
    ),
    Chronic(
        (
            "I25.10",
            "Atherosclerotic heart disease of native coronary artery without angina pectoris",
        ),
        50,
        0.02,
        0.003,
        0.12,
        None,
        ("309362", "clopidogrel 75 MG Oral Tablet"),
        None,
        ("93458", "Cardiac catheterization"),
    ),
)
OBESITY = ("E66.9", "Obesity, unspecified")

PROBLEMS = (
    Problem(
        ("J06.9", "Acute upper respiratory infection, unspecified"), 0, 120, 30, None, None, None
    ),
    Problem(
        ("J02.9", "Acute pharyngitis, unspecified"),
        3,
        120,
        12,
        _AMOXICILLIN,
        ("87880", "Rapid strep test"),
        None,
    ),
    Problem(
        ("H66.90", "Otitis media, unspecified, unspecified ear"),
        0,
        12,
        15,
        _AMOXICILLIN,
        None,
        None,
    ),
    Problem(
        ("N39.0", "Urinary tract infection, site not specified"),
        12,
        120,
        8,
        ("309309", "ciprofloxacin 500 MG Oral Tablet"),
        ("81003", "Urinalysis, automated"),
        None,
    ),
    Problem(
        ("M54.50", "Low back pain, unspecified"),
        18,
        120,
        10,
        _NAPROXEN,
        None,
        ("72148", "MRI lumbar spine without contrast"),
    ),
    Problem(
        ("S93.401A", "Sprain of unspecified ligament of right ankle, initial encounter"),
        5,
        120,
        6,
        _ACETAMINOPHEN,
        ("73610", "X-ray ankle, 3 views"),
        None,
    ),
    Problem(
        ("R51.9", "Headache, unspecified"),
        8,
        120,
        6,
        _ACETAMINOPHEN,
        None,
        ("70553", "MRI brain without and with contrast"),
    ),
    Problem(("L20.9", "Atopic dermatitis, unspecified"), 0, 120, 5, None, None, None),
    Problem(("R05.9", "Cough, unspecified"), 0, 120, 8, None, None, None),
)
EMERGENCIES = (
    Problem(("R50.9", "Fever, unspecified"), 0, 120, 6, _ACETAMINOPHEN, None, None),
    Problem(
        ("R07.9", "Chest pain, unspecified"),
        25,
        120,
        10,
        _ACETAMINOPHEN,
        ("93000", "Electrocardiogram, 12 leads"),
        None,
    ),
    Problem(
        ("R10.9", "Unspecified abdominal pain"),
        5,
        120,
        10,
        None,
        ("74177", "CT abdomen and pelvis with contrast"),
        None,
    ),
    Problem(
        ("S61.411A", "Laceration without foreign body of right hand, initial encounter"),
        3,
        120,
        8,
        None,
        ("12002", "Simple repair of superficial wound"),
        None,
    ),
    Problem(
        ("S93.401A", "Sprain of unspecified ligament of right ankle, initial encounter"),
        5,
        120,
        6,
        _ACETAMINOPHEN,
        ("73610", "X-ray ankle, 3 views"),
        None,
    ),
)
SENSITIVE = (
    Sensitive(
        ("F10.20", "Alcohol dependence, uncomplicated"),
        ("ETH", "substance abuse information sensitivity"),
        18,
        120,
        None,
        ("1483744", "naltrexone hydrochloride 50 MG Oral Tablet"),
        BEHAVIORAL,
    ),
    Sensitive(
        ("F11.20", "Opioid dependence, uncomplicated"),
        ("ETH", "substance abuse information sensitivity"),
        18,
        120,
        None,
        ("1010604", "buprenorphine 8 MG / naloxone 2 MG Sublingual Film"),
        BEHAVIORAL,
    ),
    Sensitive(
        ("B20", "Human immunodeficiency virus [HIV] disease"),
        ("HIV", "HIV/AIDS information sensitivity"),
        16,
        120,
        None,
        (
            "1999667",
            "bictegravir 50 MG / emtricitabine 200 MG / tenofovir alafenamide 25 MG Oral Tablet",
        ),
        INTERNAL,
    ),
    Sensitive(
        ("F32.9", "Major depressive disorder, single episode, unspecified"),
        ("PSY", "psychiatry information sensitivity"),
        12,
        120,
        None,
        ("312938", "sertraline 50 MG Oral Tablet"),
        BEHAVIORAL,
    ),
    Sensitive(
        ("Z30.011", "Encounter for initial prescription of contraceptive pills"),
        ("SEX", "sexuality and reproductive health information sensitivity"),
        15,
        49,
        "female",
        ("748879", "Levora 0.15/30 28 Day Pack"),
        WOMENS,
    ),
)

# key: (LOINC, display, UCUM unit, category)
VITALS = {
    "weight": ("29463-7", "Body weight", "kg"),
    "height": ("8302-2", "Body height", "cm"),
    "bmi": ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2"),
    "heart_rate": ("8867-4", "Heart rate", "/min"),
    "temperature": ("8310-5", "Body temperature", "Cel"),
    "spo2": ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%"),
}
# key: (LOINC, display, UCUM unit, normal range, abnormal range)
LABS = {
    "a1c": ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", (4.8, 5.6), (6.5, 9.5)),
    "cholesterol": (
        "2093-3",
        "Cholesterol [Mass/volume] in Serum or Plasma",
        "mg/dL",
        (140, 199),
        (200, 280),
    ),
    "glucose": (
        "2345-7",
        "Glucose [Mass/volume] in Serum or Plasma",
        "mg/dL",
        (70, 99),
        (126, 220),
    ),
    "creatinine": (
        "2160-0",
        "Creatinine [Mass/volume] in Serum or Plasma",
        "mg/dL",
        (0.6, 1.2),
        (1.3, 2.4),
    ),
    "tsh": (
        "3016-3",
        "Thyrotropin [Units/volume] in Serum or Plasma",
        "m[IU]/L",
        (0.5, 4.5),
        (4.6, 9.8),
    ),
}

ALLERGIES = (
    (("91936005", "Allergy to penicillin"), "medication", ("126485001", "Urticaria")),
    (("91935009", "Allergy to peanuts"), "food", ("39579001", "Anaphylaxis")),
    (("300913006", "Shellfish allergy"), "food", ("126485001", "Urticaria")),
    (("418689008", "Allergy to grass pollen"), "environment", ("61582004", "Allergic rhinitis")),
    (("232350006", "House dust mite allergy"), "environment", ("61582004", "Allergic rhinitis")),
)

FLU = ("140", "Influenza, seasonal, injectable, preservative free")
COVID = ("213", "SARS-COV-2 (COVID-19) vaccine, UNSPECIFIED FORMULATION")
INFANT_SCHEDULE = (  # (days after birth, CVX)
    (0, ("08", "Hep B, adolescent or pediatric")),
    (61, ("20", "DTaP")),
    (61, ("10", "IPV")),
    (61, ("49", "Hib (PRP-OMP)")),
    (61, ("133", "Pneumococcal conjugate PCV 13")),
    (122, ("20", "DTaP")),
    (122, ("10", "IPV")),
    (122, ("49", "Hib (PRP-OMP)")),
    (122, ("133", "Pneumococcal conjugate PCV 13")),
    (183, ("20", "DTaP")),
    (183, ("08", "Hep B, adolescent or pediatric")),
    (365, ("03", "MMR")),
    (365, ("21", "varicella")),
    (365, ("83", "Hep A, ped/adol, 2 dose")),
    (456, ("20", "DTaP")),
    (456, ("133", "Pneumococcal conjugate PCV 13")),
)
ADOLESCENT = (("115", "Tdap"), ("165", "HPV9"), ("114", "meningococcal MCV4P"))
SENIOR = (("187", "zoster vaccine recombinant"), ("33", "pneumococcal polysaccharide PPV23"))

PREVENTIVE_CPT = (  # (age below, CPT)
    (1, ("99391", "Preventive visit, established patient, infant")),
    (5, ("99392", "Preventive visit, established patient, age 1-4")),
    (12, ("99393", "Preventive visit, established patient, age 5-11")),
    (18, ("99394", "Preventive visit, established patient, age 12-17")),
    (40, ("99395", "Preventive visit, established patient, age 18-39")),
    (65, ("99396", "Preventive visit, established patient, age 40-64")),
    (999, ("99397", "Preventive visit, established patient, age 65+")),
)
VISIT_CPT = {
    "followup": ("99214", "Office visit, established patient, moderate complexity"),
    "acute": ("99213", "Office visit, established patient, low complexity"),
    "er": ("99284", "Emergency department visit, moderate severity"),
    "sensitive": ("99214", "Office visit, established patient, moderate complexity"),
}
ENCOUNTER_TYPE = {  # SNOMED CT
    "wellness": ("162673000", "General examination of patient (procedure)"),
    "well_child": ("410620009", "Well child visit (procedure)"),
    "followup": ("390906007", "Follow-up encounter (procedure)"),
    "acute": ("185345009", "Encounter for symptom (procedure)"),
    "er": ("50849002", "Emergency room admission (procedure)"),
    "sensitive": ("185347001", "Encounter for problem (procedure)"),
}
VENIPUNCTURE = ("36415", "Routine venipuncture")
DEPRESSION_SCREEN = ("171207006", "Depression screening (procedure)")
