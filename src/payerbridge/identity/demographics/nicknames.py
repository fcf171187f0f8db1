"""A modest table of common US given-name nicknames and spelling variants.

``ROOTS`` maps a canonical given name to the nicknames and variant spellings
people use for it on forms and insurance cards. ``NICKNAME_ROOTS`` is its
inverse: each name to every root it may stand for. Some nicknames stand for
several roots ("alex" for alexander and alexandra, "chris" for christopher and
christine); that is why a name maps to a set, and why the guards in ``rules``
refuse a nickname-level agreement when sex disagrees (boy/girl twins named
Alexander and Alexandra share a nickname).

The entries are standardised (lower case, a-z only, as ``standardize`` leaves
given names). Keep the table to well-attested pairs: every entry makes two
different people look a little more alike.

``are_name_variants`` reaches further, into the ``nicknames`` dataset (a
hand-curated table of about 1,100 English names and 2,700 of their nicknames
and variants, Apache-2.0). It relates names that are given names in their own
right (Alice and Lisa, Aaron and Erin, Alexandra and Sandra), which sisters
may well bear, so a variant is a weaker level than a nickname here: it needs
an identifier to confirm it (see ``rules``).
"""

from __future__ import annotations

from functools import cache
from types import MappingProxyType

__all__ = ["NICKNAME_ROOTS", "ROOTS", "are_name_variants", "name_roots"]

_TABLE = """
abigail: abby abbie
abraham: abe bram
alan: al allen allan
albert: al bert bertie
alexander: alex alec al sandy xander lex
alexandra: alex alexa lexi sandy ally
alfred: al alf alfie fred freddie
alice: allie ally elsie
amanda: mandy manda
andrew: andy drew
angela: angie
anthony: tony ant antony
antonia: toni
arthur: art artie
barbara: barb barbie babs
benjamin: ben benny benji
bernard: bernie
beverly: bev
bradley: brad
bridget: bridie biddy
caroline: carrie
charles: charlie chuck chas chaz chip
charlotte: charlie lottie lotte
christina: chris chrissy tina kristina
christine: chris chrissy tina kristine
christopher: chris kris topher kit
clifford: cliff
cynthia: cindy
daniel: dan danny
danielle: dani elle
david: dave davy
deborah: deb debbie debra debby
dennis: denny
donald: don donnie
dorothy: dot dottie dolly
douglas: doug
edward: ed eddie ned ted teddy
eleanor: ellie nell nellie
elizabeth: liz lizzie lizzy beth betsy betty bette eliza libby liza elisabeth bess bessie
emily: em emmy millie
eugene: gene
frances: fran frannie fanny
francis: frank frankie fran
frederick: fred freddie freddy fritz
gabriel: gabe
gabriella: gabby gaby
gerald: gerry jerry
gregory: greg
harold: hal harry
harry: hank
henry: hank harry hal
isabella: bella izzy isabel
jacob: jake
jacqueline: jackie jacquie
james: jim jimmy jimmie jamie jem
jane: janie jenny
janet: jan jenny
jeffrey: jeff geoffrey
jennifer: jen jenny jenn
jessica: jess jessie
jesse: jess jessie
john: jack johnny jon
jonathan: jon jonny
joseph: joe joey jos
josephine: jo josie
joshua: josh
judith: judy jude
katherine: kate katie kathy kath kat katy kitty kay cathy catherine kathryn katharine kit
kathleen: kathy kath kat katie
kenneth: ken kenny
kimberly: kim kimmy
lawrence: larry laurence laurie
leonard: leo len lenny
louis: lou louie lewis
lucille: lucy lu
margaret: peggy peg maggie meg marge margie madge gretchen
martin: marty
mary: molly polly mae mamie mimi
matthew: matt matty
megan: meg
melissa: mel missy lissa
michael: mike mikey mick mickey
michelle: shelly shelley
mitchell: mitch
nathaniel: nate nat nathan
nicholas: nick nicky nico
nicole: nicky nikki nic
patricia: pat patty patsy tricia trish
patrick: pat paddy
peter: pete
philip: phil phillip pip
rebecca: becky becca
richard: rich rick ricky dick richie
robert: bob bobby rob robbie robby bert
roberta: bobbie robbie bertie
ronald: ron ronnie
russell: russ rusty
samantha: sam sammy
samuel: sam sammy
sandra: sandy
stephanie: steph stevie
stephen: steve steven stevie
susan: sue susie suzy
theodore: ted teddy theo
theresa: terry tess tessa teresa
thomas: tom tommy thom
timothy: tim timmy
valerie: val
victoria: vicky vickie tori
vincent: vince vinny
virginia: ginny ginger
walter: walt wally
william: bill billy will willy willie wills
zachary: zach zack
"""


def _parse(table: str) -> dict[str, tuple[str, ...]]:
    roots: dict[str, tuple[str, ...]] = {}
    for line in table.strip().splitlines():
        root, _, names = line.partition(":")
        roots[root.strip()] = tuple(dict.fromkeys(names.split()))
    return roots


def _invert(roots: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    inverse: dict[str, list[str]] = {}
    for root, names in roots.items():
        inverse.setdefault(root, []).append(root)
        for name in names:
            inverse.setdefault(name, []).append(root)
    # Sorted for determinism: a name's roots are a set, not a ranking.
    return {name: tuple(sorted(set(found))) for name, found in inverse.items()}


ROOTS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(_parse(_TABLE))
NICKNAME_ROOTS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(_invert(dict(ROOTS)))


def name_roots(name: str) -> tuple[str, ...]:
    """Every canonical root a standardised given name may stand for (itself when unknown)."""
    return NICKNAME_ROOTS.get(name, (name,))


@cache
def _dataset_roots() -> MappingProxyType[str, frozenset[str]]:
    """Each name of the ``nicknames`` dataset to its canonical names (itself included)."""
    from nicknames import NickNamer  # loaded on first use: most requests never get here

    roots: dict[str, set[str]] = {}
    for canonical, nicknames in NickNamer().nickname_lookup.items():
        roots.setdefault(canonical, set()).add(canonical)
        for nickname in nicknames:
            roots.setdefault(nickname, set()).add(canonical)
    return MappingProxyType({name: frozenset(found) for name, found in roots.items()})


def are_name_variants(a: str, b: str) -> bool:
    """Whether the ``nicknames`` dataset relates two standardised given names (one a
    nickname or variant of the other, or both of one canonical name)."""
    roots = _dataset_roots()
    left, right = roots.get(a), roots.get(b)
    return left is not None and right is not None and not left.isdisjoint(right)
