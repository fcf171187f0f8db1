"""Vocabulary for synthetic people: given names, surnames, streets, places, employers, plans.

Name lists run roughly from common to rare; the households' skewed draw favours
the front. The names mix origins and spellings (accents, apostrophes, hyphens,
multi-word surnames). Cities, states, ZIP codes, area codes and UTC offsets
are real so that addresses look right; the people and phone numbers are not.
"""

from __future__ import annotations

from typing import NamedTuple


def _words(text: str) -> tuple[str, ...]:
    """Whitespace-separated words, first occurrence kept, order kept."""
    return tuple(dict.fromkeys(text.split()))


FEMALE_NAMES = _words("""
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
MALE_NAMES = _words("""
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
SURNAMES = _words("""
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

STREETS = _words("""
    Main Oak Maple Cedar Pine Elm Washington Lake Hill Park Walnut Sunset Lincoln Jackson Church
    River Highland Meadow Forest Ridge Willow Spring Chestnut Madison Jefferson Franklin Cherry
    Birch Dogwood Magnolia Hickory Sycamore Valley Mill Center Union Prospect Woodland Fairview
    Orchard Adams Monroe Grant Peachtree 1st 2nd 3rd 5th 10th 12th Laurel Aspen
""")
STREET_SUFFIXES = ("St", "Ave", "Rd", "Dr", "Ln", "Blvd", "Ct", "Way", "Pl", "Ter", "Cir", "Pkwy")


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
PLACES = tuple(Place(*entry.replace("_", " ").split(";")) for entry in _PLACE_ROWS.split())

EMPLOYERS = (
    "Acme Manufacturing",
    "Riverside School District",
    "Bright Path Logistics",
    "Summit Engineering",
    "Harvest Foods Cooperative",
    "Lumen Software",
    "County of Fairview",
    "Pioneer Credit Union",
    "Blue Heron Hospitality",
    "Keystone Construction",
    "Northfield University",
    "Cascade Retail Group",
)
COMMERCIAL_PLANS = (
    ("PPO-GOLD", "Gold PPO"),
    ("PPO-SILVER", "Silver PPO"),
    ("HMO-SILVER", "Silver HMO"),
    ("HMO-GOLD", "Gold HMO"),
    ("EPO-BRONZE", "Bronze EPO"),
    ("HDHP-BRONZE", "Bronze HDHP"),
)
ADULT_AGE_BANDS = ((18, 25, 0.09), (26, 34, 0.17), (35, 44, 0.19), (45, 54, 0.19), (55, 64, 0.18))
