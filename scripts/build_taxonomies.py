"""Write the benchmark taxonomies (src/speciarl/data/taxonomies/*.json) from typed public facts.

    python scripts/build_taxonomies.py            # rewrite the JSON files
    python scripts/build_taxonomies.py --check    # fail if the shipped files differ

Class lists are the benchmarks' public class names; the hierarchies above them are public
taxonomy (bird families and orders after the AOS/IOC checklists, aircraft families and
manufacturers as FGVC-Aircraft 2013b defines them, car make and model read off the class name).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from speciarl.data.image_sets import readable_label
from speciarl.data.taxonomies import (
    GENERIC,
    LESS_SPECIFIC,
    TaxonomyBuilder,
    aircraft_taxonomy_from_mapping,
    car_taxonomy_from_names,
    grouped_taxonomy,
    write_taxonomy,
)

OUT = Path(__file__).resolve().parents[1] / "src" / "speciarl" / "data" / "taxonomies"

# ----------------------------------------------------------------------------------- CUB-200-2011
# Orders (generic) and families (less specific) with their common names.
ORDERS = {
    "Procellariiformes": ["tubenose", "tubenosed seabird"],
    "Cuculiformes": [],
    "Charadriiformes": ["shorebird", "shorebirds"],
    "Passeriformes": ["passerine", "perching bird"],
    "Caprimulgiformes": [],
    "Suliformes": [],
    "Piciformes": [],
    "Anseriformes": ["waterfowl"],
    "Podicipediformes": [],
    "Apodiformes": [],
    "Coraciiformes": [],
    "Gaviiformes": [],
    "Pelecaniformes": [],
}
FAMILIES = {
    "Diomedeidae": ("Procellariiformes", ["albatross", "albatrosses"]),
    "Procellariidae": ("Procellariiformes", ["petrel", "petrels"]),
    "Cuculidae": ("Cuculiformes", ["cuckoo", "cuckoos"]),
    "Alcidae": ("Charadriiformes", ["auk", "alcid", "auks"]),
    "Laridae": ("Charadriiformes", ["larid", "gulls and terns"]),
    "Stercorariidae": ("Charadriiformes", ["skua", "jaeger", "jaegers", "skuas"]),
    "Icteridae": ("Passeriformes", ["icterid", "new world blackbird"]),
    "Cardinalidae": ("Passeriformes", ["cardinalid", "cardinal family"]),
    "Ptilonorhynchidae": ("Passeriformes", ["bowerbird", "bowerbirds"]),
    "Mimidae": ("Passeriformes", ["mimid", "mimic thrush"]),
    "Icteriidae": ("Passeriformes", ["chat"]),
    "Passerellidae": ("sparrow", ["new world sparrow", "american sparrow"]),
    "Passeridae": ("sparrow", ["old world sparrow"]),
    "Certhiidae": ("Passeriformes", ["treecreeper", "creeper"]),
    "Corvidae": ("Passeriformes", ["corvid", "crow family"]),
    "Fringillidae": ("Passeriformes", ["finch", "true finch", "finches"]),
    "Tyrannidae": ("Passeriformes", ["tyrant flycatcher"]),
    "Alaudidae": ("Passeriformes", ["lark", "larks"]),
    "Sittidae": ("Passeriformes", ["nuthatch", "nuthatches"]),
    "Parulidae": (
        "Passeriformes",
        ["warbler", "new world warbler", "wood warbler", "wood-warbler", "warblers"],
    ),
    "Motacillidae": ("Passeriformes", ["wagtails and pipits"]),
    "Laniidae": ("Passeriformes", ["shrike", "shrikes"]),
    "Sturnidae": ("Passeriformes", ["starling", "starlings"]),
    "Hirundinidae": ("Passeriformes", ["swallow", "swallows"]),
    "Vireonidae": ("Passeriformes", ["vireo", "vireos"]),
    "Bombycillidae": ("Passeriformes", ["waxwing", "waxwings"]),
    "Troglodytidae": ("Passeriformes", ["wren", "wrens"]),
    "Caprimulgidae": ("Caprimulgiformes", ["nightjar", "goatsucker", "nightjars"]),
    "Phalacrocoracidae": ("Suliformes", ["cormorant", "shag", "cormorants"]),
    "Fregatidae": ("Suliformes", []),
    "Picidae": ("Piciformes", ["woodpecker", "woodpeckers"]),
    "Anatidae": ("Anseriformes", ["duck family", "ducks geese and swans"]),
    "Podicipedidae": ("Podicipediformes", ["grebe", "grebes"]),
    "Trochilidae": ("Apodiformes", ["hummingbird", "hummingbirds"]),
    "Alcedinidae": ("Coraciiformes", ["kingfisher", "kingfishers"]),
    "Gaviidae": ("Gaviiformes", ["loon", "diver", "loons"]),
    "Pelecanidae": ("Pelecaniformes", ["pelican", "pelicans"]),
}
# Common group words below (or, for "sparrow", above) the family; all less specific.
BIRD_GROUPS = {
    "sparrow": ("Passeriformes", ["sparrows"]),
    "auklet": ("Alcidae", ["auklets"]),
    "puffin": ("Alcidae", ["puffins"]),
    "guillemot": ("Alcidae", ["guillemots"]),
    "blackbird": ("Icteridae", ["blackbirds"]),
    "cowbird": ("Icteridae", ["cowbirds"]),
    "grackle": ("Icteridae", ["grackles"]),
    "meadowlark": ("Icteridae", ["meadowlarks"]),
    "oriole": ("Icteridae", ["new world oriole", "orioles"]),
    "bunting": ("Cardinalidae", ["buntings"]),
    "grosbeak": ("Cardinalidae", ["grosbeaks"]),
    "tanager": ("Cardinalidae", ["tanagers"]),
    "catbird": ("Mimidae", ["catbirds"]),
    "thrasher": ("Mimidae", ["thrashers"]),
    "towhee": ("Passerellidae", ["towhees"]),
    "junco": ("Passerellidae", ["juncos"]),
    "crow": ("Corvidae", ["crows"]),
    "jay": ("Corvidae", ["jays"]),
    "raven": ("Corvidae", ["ravens"]),
    "nutcracker": ("Corvidae", ["nutcrackers"]),
    "goldfinch": ("Fringillidae", ["goldfinches"]),
    "rosy finch": ("Fringillidae", ["rosy-finch"]),
    "flicker": ("Picidae", ["flickers"]),
    "flycatcher": ("Tyrannidae", ["flycatchers"]),
    "kingbird": ("Tyrannidae", ["kingbirds"]),
    "pewee": ("Tyrannidae", ["wood pewee", "wood-pewee"]),
    "duck": ("Anatidae", ["ducks"]),
    "merganser": ("duck", ["mergansers"]),
    "gull": ("Laridae", ["seagull", "gulls"]),
    "tern": ("Laridae", ["terns"]),
    "kittiwake": ("Laridae", ["kittiwakes"]),
    "violetear": ("Trochilidae", []),
    "waterthrush": ("Parulidae", ["waterthrushes"]),
    "redstart": ("Parulidae", []),
    "yellowthroat": ("Parulidae", []),
    "pipit": ("Motacillidae", ["pipits"]),
    "fulmar": ("Procellariidae", ["fulmars"]),
    "ani": ("Cuculidae", []),
}
# The 200 CUB classes in order, with the group word or family each sits under.
CUB_CLASSES = """
001.Black_footed_Albatross Diomedeidae
002.Laysan_Albatross Diomedeidae
003.Sooty_Albatross Diomedeidae
004.Groove_billed_Ani ani
005.Crested_Auklet auklet
006.Least_Auklet auklet
007.Parakeet_Auklet auklet
008.Rhinoceros_Auklet auklet
009.Brewer_Blackbird blackbird
010.Red_winged_Blackbird blackbird
011.Rusty_Blackbird blackbird
012.Yellow_headed_Blackbird blackbird
013.Bobolink Icteridae
014.Indigo_Bunting bunting
015.Lazuli_Bunting bunting
016.Painted_Bunting bunting
017.Cardinal Cardinalidae
018.Spotted_Catbird Ptilonorhynchidae
019.Gray_Catbird catbird
020.Yellow_breasted_Chat Icteriidae
021.Eastern_Towhee towhee
022.Chuck_will_Widow Caprimulgidae
023.Brandt_Cormorant Phalacrocoracidae
024.Red_faced_Cormorant Phalacrocoracidae
025.Pelagic_Cormorant Phalacrocoracidae
026.Bronzed_Cowbird cowbird
027.Shiny_Cowbird cowbird
028.Brown_Creeper Certhiidae
029.American_Crow crow
030.Fish_Crow crow
031.Black_billed_Cuckoo Cuculidae
032.Mangrove_Cuckoo Cuculidae
033.Yellow_billed_Cuckoo Cuculidae
034.Gray_crowned_Rosy_Finch rosy_finch
035.Purple_Finch Fringillidae
036.Northern_Flicker flicker
037.Acadian_Flycatcher flycatcher
038.Great_Crested_Flycatcher flycatcher
039.Least_Flycatcher flycatcher
040.Olive_sided_Flycatcher flycatcher
041.Scissor_tailed_Flycatcher flycatcher
042.Vermilion_Flycatcher flycatcher
043.Yellow_bellied_Flycatcher flycatcher
044.Frigatebird Fregatidae
045.Northern_Fulmar fulmar
046.Gadwall duck
047.American_Goldfinch goldfinch
048.European_Goldfinch goldfinch
049.Boat_tailed_Grackle grackle
050.Eared_Grebe Podicipedidae
051.Horned_Grebe Podicipedidae
052.Pied_billed_Grebe Podicipedidae
053.Western_Grebe Podicipedidae
054.Blue_Grosbeak grosbeak
055.Evening_Grosbeak Fringillidae
056.Pine_Grosbeak Fringillidae
057.Rose_breasted_Grosbeak grosbeak
058.Pigeon_Guillemot guillemot
059.California_Gull gull
060.Glaucous_winged_Gull gull
061.Heermann_Gull gull
062.Herring_Gull gull
063.Ivory_Gull gull
064.Ring_billed_Gull gull
065.Slaty_backed_Gull gull
066.Western_Gull gull
067.Anna_Hummingbird Trochilidae
068.Ruby_throated_Hummingbird Trochilidae
069.Rufous_Hummingbird Trochilidae
070.Green_Violetear violetear
071.Long_tailed_Jaeger Stercorariidae
072.Pomarine_Jaeger Stercorariidae
073.Blue_Jay jay
074.Florida_Jay jay
075.Green_Jay jay
076.Dark_eyed_Junco junco
077.Tropical_Kingbird kingbird
078.Gray_Kingbird kingbird
079.Belted_Kingfisher Alcedinidae
080.Green_Kingfisher Alcedinidae
081.Pied_Kingfisher Alcedinidae
082.Ringed_Kingfisher Alcedinidae
083.White_breasted_Kingfisher Alcedinidae
084.Red_legged_Kittiwake kittiwake
085.Horned_Lark Alaudidae
086.Pacific_Loon Gaviidae
087.Mallard duck
088.Western_Meadowlark meadowlark
089.Hooded_Merganser merganser
090.Red_breasted_Merganser merganser
091.Mockingbird Mimidae
092.Nighthawk Caprimulgidae
093.Clark_Nutcracker nutcracker
094.White_breasted_Nuthatch Sittidae
095.Baltimore_Oriole oriole
096.Hooded_Oriole oriole
097.Orchard_Oriole oriole
098.Scott_Oriole oriole
099.Ovenbird Parulidae
100.Brown_Pelican Pelecanidae
101.White_Pelican Pelecanidae
102.Western_Wood_Pewee pewee
103.Sayornis Tyrannidae
104.American_Pipit pipit
105.Whip_poor_Will Caprimulgidae
106.Horned_Puffin puffin
107.Common_Raven raven
108.White_necked_Raven raven
109.American_Redstart redstart
110.Geococcyx Cuculidae
111.Loggerhead_Shrike Laniidae
112.Great_Grey_Shrike Laniidae
113.Baird_Sparrow Passerellidae
114.Black_throated_Sparrow Passerellidae
115.Brewer_Sparrow Passerellidae
116.Chipping_Sparrow Passerellidae
117.Clay_colored_Sparrow Passerellidae
118.House_Sparrow Passeridae
119.Field_Sparrow Passerellidae
120.Fox_Sparrow Passerellidae
121.Grasshopper_Sparrow Passerellidae
122.Harris_Sparrow Passerellidae
123.Henslow_Sparrow Passerellidae
124.Le_Conte_Sparrow Passerellidae
125.Lincoln_Sparrow Passerellidae
126.Nelson_Sharp_tailed_Sparrow Passerellidae
127.Savannah_Sparrow Passerellidae
128.Seaside_Sparrow Passerellidae
129.Song_Sparrow Passerellidae
130.Tree_Sparrow Passerellidae
131.Vesper_Sparrow Passerellidae
132.White_crowned_Sparrow Passerellidae
133.White_throated_Sparrow Passerellidae
134.Cape_Glossy_Starling Sturnidae
135.Bank_Swallow Hirundinidae
136.Barn_Swallow Hirundinidae
137.Cliff_Swallow Hirundinidae
138.Tree_Swallow Hirundinidae
139.Scarlet_Tanager tanager
140.Summer_Tanager tanager
141.Artic_Tern tern
142.Black_Tern tern
143.Caspian_Tern tern
144.Common_Tern tern
145.Elegant_Tern tern
146.Forsters_Tern tern
147.Least_Tern tern
148.Green_tailed_Towhee towhee
149.Brown_Thrasher thrasher
150.Sage_Thrasher thrasher
151.Black_capped_Vireo Vireonidae
152.Blue_headed_Vireo Vireonidae
153.Philadelphia_Vireo Vireonidae
154.Red_eyed_Vireo Vireonidae
155.Warbling_Vireo Vireonidae
156.White_eyed_Vireo Vireonidae
157.Yellow_throated_Vireo Vireonidae
158.Bay_breasted_Warbler Parulidae
159.Black_and_white_Warbler Parulidae
160.Black_throated_Blue_Warbler Parulidae
161.Blue_winged_Warbler Parulidae
162.Canada_Warbler Parulidae
163.Cape_May_Warbler Parulidae
164.Cerulean_Warbler Parulidae
165.Chestnut_sided_Warbler Parulidae
166.Golden_winged_Warbler Parulidae
167.Hooded_Warbler Parulidae
168.Kentucky_Warbler Parulidae
169.Magnolia_Warbler Parulidae
170.Mourning_Warbler Parulidae
171.Myrtle_Warbler Parulidae
172.Nashville_Warbler Parulidae
173.Orange_crowned_Warbler Parulidae
174.Palm_Warbler Parulidae
175.Pine_Warbler Parulidae
176.Prairie_Warbler Parulidae
177.Prothonotary_Warbler Parulidae
178.Swainson_Warbler Parulidae
179.Tennessee_Warbler Parulidae
180.Wilson_Warbler Parulidae
181.Worm_eating_Warbler Parulidae
182.Yellow_Warbler Parulidae
183.Northern_Waterthrush waterthrush
184.Louisiana_Waterthrush waterthrush
185.Bohemian_Waxwing Bombycillidae
186.Cedar_Waxwing Bombycillidae
187.American_Three_toed_Woodpecker Picidae
188.Pileated_Woodpecker Picidae
189.Red_bellied_Woodpecker Picidae
190.Red_cockaded_Woodpecker Picidae
191.Red_headed_Woodpecker Picidae
192.Downy_Woodpecker Picidae
193.Bewick_Wren Troglodytidae
194.Cactus_Wren Troglodytidae
195.Carolina_Wren Troglodytidae
196.House_Wren Troglodytidae
197.Marsh_Wren Troglodytidae
198.Rock_Wren Troglodytidae
199.Winter_Wren Troglodytidae
200.Common_Yellowthroat yellowthroat
"""
# The usual spellings: "Black-footed Albatross", "Brewer's Blackbird".
HYPHENATED = {
    "footed",
    "billed",
    "winged",
    "headed",
    "breasted",
    "throated",
    "crowned",
    "tailed",
    "sided",
    "bellied",
    "backed",
    "eyed",
    "necked",
    "legged",
    "colored",
    "faced",
    "capped",
    "toed",
    "eating",
}
POSSESSIVE = {
    "Brewer",
    "Brandt",
    "Anna",
    "Heermann",
    "Clark",
    "Scott",
    "Baird",
    "Harris",
    "Henslow",
    "Lincoln",
    "Swainson",
    "Wilson",
    "Bewick",
}
BIRD_SYNONYMS = {
    "Cardinal": ["Northern Cardinal"],
    "Gray Catbird": ["Grey Catbird"],
    "Chuck will Widow": ["Chuck-will's-widow", "Chuck-will-widow"],
    "Florida Jay": ["Florida Scrub Jay", "Florida Scrub-Jay"],
    "Mockingbird": ["Northern Mockingbird"],
    "Whip poor Will": ["Whip-poor-will", "Eastern Whip-poor-will"],
    "Geococcyx": ["roadrunner"],
    "Sayornis": ["phoebe"],
    "Great Grey Shrike": ["Great Gray Shrike", "Northern Shrike"],
    "Myrtle Warbler": ["Yellow-rumped Warbler", "Yellow rumped Warbler"],
    "Artic Tern": ["Arctic Tern"],
    "Forsters Tern": ["Forster's Tern", "Forster Tern"],
    "Nelson Sharp tailed Sparrow": ["Nelson's Sparrow", "Nelson's Sharp-tailed Sparrow", "Nelson Sparrow"],
    "Tree Sparrow": ["American Tree Sparrow"],
    "White Pelican": ["American White Pelican"],
    "Le Conte Sparrow": ["LeConte's Sparrow", "Le Conte's Sparrow", "LeConte Sparrow"],
    "Western Wood Pewee": ["Western Wood-Pewee"],
    "Gray crowned Rosy Finch": ["Gray-crowned Rosy-Finch", "Grey-crowned Rosy Finch"],
    "Cape Glossy Starling": ["Cape Starling", "Cape Glossy-Starling"],
    "Winter Wren": ["Eurasian Wren"],
    "Green Kingfisher": [],
    "Gray Kingbird": ["Grey Kingbird"],
    "Water Pipit": [],
    "American Pipit": ["Buff-bellied Pipit"],
}
# Classes that name a genus or a species group: their species are *more specific* answers.
BIRD_CHILDREN = {
    "Geococcyx": ["Greater Roadrunner", "Lesser Roadrunner"],
    "Sayornis": ["Eastern Phoebe", "Black Phoebe", "Say's Phoebe"],
    "Frigatebird": ["Magnificent Frigatebird", "Great Frigatebird", "Lesser Frigatebird"],
    "Nighthawk": ["Common Nighthawk", "Lesser Nighthawk", "Antillean Nighthawk"],
}


def bird_synonyms(name: str) -> list[str]:
    words = name.split()
    out = list(BIRD_SYNONYMS.get(name, []))
    joined: list[str] = []
    for word in words:
        if joined and word.lower() in HYPHENATED:
            joined[-1] = f"{joined[-1]}-{word}"
        else:
            joined.append(word)
    hyphenated = " ".join(joined)
    if name == "Black and white Warbler":
        hyphenated = "Black-and-white Warbler"
    if hyphenated != name:
        out.append(hyphenated)
    if words[0] in POSSESSIVE:
        for base in {name, hyphenated}:
            first, _, rest = base.partition(" ")
            out.append(f"{first}'s {rest}")
    return out


def cub_taxonomy():
    b = TaxonomyBuilder()
    b.add("bird", None, GENERIC, ["birds", "avian", "wild bird"])
    for order, synonyms in ORDERS.items():
        b.add(order, "bird", GENERIC, synonyms)
    b.add("sparrow", "Passeriformes", LESS_SPECIFIC, BIRD_GROUPS["sparrow"][1])
    for family, (parent, synonyms) in FAMILIES.items():
        b.add(family, parent, LESS_SPECIFIC, synonyms)
    for group, (parent, synonyms) in BIRD_GROUPS.items():
        b.add(group, parent, LESS_SPECIFIC, synonyms)
    count = 0
    for line in CUB_CLASSES.strip().splitlines():
        folder, parent = line.split()
        name = readable_label(folder)
        b.add(name, parent.replace("_", " "), None, bird_synonyms(name))
        for child in BIRD_CHILDREN.get(name, []):
            b.add(child, name, None, [])
        count += 1
    assert count == 200, count
    return b.build(), b.dropped


# ----------------------------------------------------------------------------------- FGVC-Aircraft
# family: (manufacturer, [variants]) as FGVC-Aircraft 2013b defines them (100 variants, 70 families,
# 30 manufacturers).
AIRCRAFT = {
    "A300": ("Airbus", ["A300B4"]),
    "A310": ("Airbus", ["A310"]),
    "A320": ("Airbus", ["A318", "A319", "A320", "A321"]),
    "A330": ("Airbus", ["A330-200", "A330-300"]),
    "A340": ("Airbus", ["A340-200", "A340-300", "A340-500", "A340-600"]),
    "A380": ("Airbus", ["A380"]),
    "ATR-42": ("ATR", ["ATR-42"]),
    "ATR-72": ("ATR", ["ATR-72"]),
    "An-12": ("Antonov", ["An-12"]),
    "BAE 146": ("British Aerospace", ["BAE 146-200", "BAE 146-300"]),
    "BAE-125": ("British Aerospace", ["BAE-125"]),
    "Hawk T1": ("British Aerospace", ["Hawk T1"]),
    "Beechcraft 1900": ("Beechcraft", ["Beechcraft 1900"]),
    "King Air": ("Beechcraft", ["Model B200"]),
    "Boeing 707": ("Boeing", ["707-320"]),
    "Boeing 717": ("Boeing", ["Boeing 717"]),
    "Boeing 727": ("Boeing", ["727-200"]),
    "Boeing 737": (
        "Boeing",
        ["737-200", "737-300", "737-400", "737-500", "737-600", "737-700", "737-800", "737-900"],
    ),
    "Boeing 747": ("Boeing", ["747-100", "747-200", "747-300", "747-400"]),
    "Boeing 757": ("Boeing", ["757-200", "757-300"]),
    "Boeing 767": ("Boeing", ["767-200", "767-300", "767-400"]),
    "Boeing 777": ("Boeing", ["777-200", "777-300"]),
    "CRJ-200": ("Bombardier Aerospace", ["CRJ-200"]),
    "CRJ-700": ("Bombardier Aerospace", ["CRJ-700", "CRJ-900"]),
    "Global Express": ("Bombardier Aerospace", ["Global Express"]),
    "Challenger 600": ("Canadair", ["Challenger 600"]),
    "Cessna 172": ("Cessna", ["Cessna 172"]),
    "Cessna 208": ("Cessna", ["Cessna 208"]),
    "Cessna Citation": ("Cessna", ["Cessna 525", "Cessna 560"]),
    "SR-20": ("Cirrus Aircraft", ["SR-20"]),
    "Falcon 2000": ("Dassault Aviation", ["Falcon 2000"]),
    "Falcon 900": ("Dassault Aviation", ["Falcon 900"]),
    "Dornier 328": ("Dornier", ["Dornier 328"]),
    "C-47": ("Douglas Aircraft Company", ["C-47"]),
    "DC-3": ("Douglas Aircraft Company", ["DC-3"]),
    "DC-6": ("Douglas Aircraft Company", ["DC-6"]),
    "DC-8": ("Douglas Aircraft Company", ["DC-8"]),
    "EMB-120": ("Embraer", ["EMB-120"]),
    "Embraer E-Jet": ("Embraer", ["E-170", "E-190", "E-195"]),
    "Embraer ERJ 145": ("Embraer", ["ERJ 135", "ERJ 145"]),
    "Embraer Legacy 600": ("Embraer", ["Embraer Legacy 600"]),
    "Eurofighter Typhoon": ("Eurofighter", ["Eurofighter Typhoon"]),
    "Metroliner": ("Fairchild", ["Metroliner"]),
    "Fokker 100": ("Fokker", ["Fokker 100"]),
    "Fokker 50": ("Fokker", ["Fokker 50"]),
    "Fokker 70": ("Fokker", ["Fokker 70"]),
    "Gulfstream": ("Gulfstream Aerospace", ["Gulfstream IV", "Gulfstream V"]),
    "Il-76": ("Ilyushin", ["Il-76"]),
    "C-130": ("Lockheed Corporation", ["C-130"]),
    "L-1011": ("Lockheed Corporation", ["L-1011"]),
    "F-16": ("Lockheed Martin", ["F-16A/B"]),
    "DC-10": ("McDonnell Douglas", ["DC-10"]),
    "DC-9": ("McDonnell Douglas", ["DC-9-30"]),
    "F/A-18": ("McDonnell Douglas", ["F/A-18"]),
    "MD-11": ("McDonnell Douglas", ["MD-11"]),
    "MD-80": ("McDonnell Douglas", ["MD-80", "MD-87"]),
    "MD-90": ("McDonnell Douglas", ["MD-90"]),
    "Tornado": ("Panavia", ["Tornado"]),
    "PA-28": ("Piper", ["PA-28"]),
    "DR-400": ("Robin", ["DR-400"]),
    "Saab 2000": ("Saab", ["Saab 2000"]),
    "Saab 340": ("Saab", ["Saab 340"]),
    "Spitfire": ("Supermarine", ["Spitfire"]),
    "Tu-134": ("Tupolev", ["Tu-134"]),
    "Tu-154": ("Tupolev", ["Tu-154"]),
    "Yak-42": ("Yakovlev", ["Yak-42"]),
    "DH-82": ("de Havilland", ["DH-82"]),
    "DHC-1": ("de Havilland", ["DHC-1"]),
    "DHC-6": ("de Havilland", ["DHC-6"]),
    "Dash 8": ("de Havilland", ["DHC-8-100", "DHC-8-300"]),
}
AIRCRAFT_SYNONYMS = {
    "Boeing 707": ["707"],
    "Boeing 727": ["727"],
    "Boeing 737": ["737"],
    "Boeing 747": ["747", "jumbo jet"],
    "Boeing 757": ["757"],
    "Boeing 767": ["767"],
    "Boeing 777": ["777"],
    "Boeing 717": ["717"],
    "F/A-18": ["F-18", "FA-18", "F/A-18 Hornet", "Hornet"],
    "F-16A/B": ["F-16A", "F-16B"],
    "F-16": ["Fighting Falcon", "F-16 Fighting Falcon"],
    "Eurofighter Typhoon": ["Typhoon"],
    "C-130": ["Hercules", "C-130 Hercules"],
    "C-47": ["Skytrain", "C-47 Skytrain"],
    "DH-82": ["Tiger Moth"],
    "DHC-1": ["Chipmunk"],
    "DHC-6": ["Twin Otter"],
    "Dash 8": ["DHC-8", "Q Series"],
    "DHC-8-100": ["Dash 8-100", "Q100"],
    "DHC-8-300": ["Dash 8-300", "Q300"],
    "PA-28": ["Piper Cherokee", "Cherokee"],
    "SR-20": ["SR20", "Cirrus SR20"],
    "L-1011": ["TriStar", "Lockheed TriStar", "L-1011 TriStar"],
    "Model B200": ["King Air B200", "Beechcraft King Air B200", "B200", "Beechcraft B200"],
    "Cessna 208": ["Cessna Caravan", "Caravan"],
    "Cessna 172": ["Cessna Skyhawk", "Skyhawk"],
    "Cessna 525": ["CitationJet", "Citation CJ"],
    "Cessna 560": ["Citation V"],
    "Cessna Citation": ["Citation"],
    "E-170": ["Embraer 170", "E170", "ERJ-170"],
    "E-190": ["Embraer 190", "E190", "ERJ-190"],
    "E-195": ["Embraer 195", "E195", "ERJ-195"],
    "Embraer E-Jet": ["E-Jet", "E-Jets"],
    "ERJ 135": ["ERJ-135", "Embraer ERJ-135", "Embraer 135"],
    "ERJ 145": ["ERJ-145", "Embraer ERJ-145", "Embraer 145"],
    "EMB-120": ["Brasilia", "Embraer Brasilia"],
    "Embraer Legacy 600": ["Legacy 600"],
    "CRJ-200": ["CRJ200", "Bombardier CRJ200"],
    "CRJ-700": ["CRJ700"],
    "CRJ-900": ["CRJ900"],
    "Dornier 328": ["Do 328"],
    "Gulfstream IV": ["G-IV", "GIV"],
    "Gulfstream V": ["G-V", "GV"],
    "ATR-42": ["ATR 42"],
    "ATR-72": ["ATR 72"],
    "Beechcraft 1900": ["Beech 1900"],
    "Hawk T1": ["BAE Hawk"],
    "A380": ["Airbus A380"],
    "Metroliner": ["Fairchild Metroliner", "Swearingen Metroliner"],
}


def aircraft_taxonomy():
    mapping = {v: (family, maker) for family, (maker, variants) in AIRCRAFT.items() for v in variants}
    assert len(mapping) == 100 and len(AIRCRAFT) == 70 and len({m for m, _ in AIRCRAFT.values()}) == 30
    return aircraft_taxonomy_from_mapping(mapping, AIRCRAFT_SYNONYMS)


# ----------------------------------------------------------------------------------- Stanford Cars
CAR_CLASSES = """
AM General Hummer SUV 2000|Acura RL Sedan 2012|Acura TL Sedan 2012|Acura TL Type-S 2008|Acura TSX Sedan 2012
Acura Integra Type R 2001|Acura ZDX Hatchback 2012|Aston Martin V8 Vantage Convertible 2012
Aston Martin V8 Vantage Coupe 2012|Aston Martin Virage Convertible 2012|Aston Martin Virage Coupe 2012
Audi RS 4 Convertible 2008|Audi A5 Coupe 2012|Audi TTS Coupe 2012|Audi R8 Coupe 2012|Audi V8 Sedan 1994
Audi 100 Sedan 1994|Audi 100 Wagon 1994|Audi TT Hatchback 2011|Audi S6 Sedan 2011|Audi S5 Convertible 2012
Audi S5 Coupe 2012|Audi S4 Sedan 2012|Audi S4 Sedan 2007|Audi TT RS Coupe 2012|BMW ActiveHybrid 5 Sedan 2012
BMW 1 Series Convertible 2012|BMW 1 Series Coupe 2012|BMW 3 Series Sedan 2012|BMW 3 Series Wagon 2012
BMW 6 Series Convertible 2007|BMW X5 SUV 2007|BMW X6 SUV 2012|BMW M3 Coupe 2012|BMW M5 Sedan 2010
BMW M6 Convertible 2010|BMW X3 SUV 2012|BMW Z4 Convertible 2012|Bentley Continental Supersports Conv. Convertible 2012
Bentley Arnage Sedan 2009|Bentley Mulsanne Sedan 2011|Bentley Continental GT Coupe 2012
Bentley Continental GT Coupe 2007|Bentley Continental Flying Spur Sedan 2007|Bugatti Veyron 16.4 Convertible 2009
Bugatti Veyron 16.4 Coupe 2009|Buick Regal GS 2012|Buick Rainier SUV 2007|Buick Verano Sedan 2012
Buick Enclave SUV 2012|Cadillac CTS-V Sedan 2012|Cadillac SRX SUV 2012|Cadillac Escalade EXT Crew Cab 2007
Chevrolet Silverado 1500 Hybrid Crew Cab 2012|Chevrolet Corvette Convertible 2012|Chevrolet Corvette ZR1 2012
Chevrolet Corvette Ron Fellows Edition Z06 2007|Chevrolet Traverse SUV 2012|Chevrolet Camaro Convertible 2012
Chevrolet HHR SS 2010|Chevrolet Impala Sedan 2007|Chevrolet Tahoe Hybrid SUV 2012|Chevrolet Sonic Sedan 2012
Chevrolet Express Cargo Van 2007|Chevrolet Avalanche Crew Cab 2012|Chevrolet Cobalt SS 2010
Chevrolet Malibu Hybrid Sedan 2010|Chevrolet TrailBlazer SS 2009|Chevrolet Silverado 2500HD Regular Cab 2012
Chevrolet Silverado 1500 Classic Extended Cab 2007|Chevrolet Express Van 2007|Chevrolet Monte Carlo Coupe 2007
Chevrolet Malibu Sedan 2007|Chevrolet Silverado 1500 Extended Cab 2012|Chevrolet Silverado 1500 Regular Cab 2012
Chrysler Aspen SUV 2009|Chrysler Sebring Convertible 2010|Chrysler Town and Country Minivan 2012
Chrysler 300 SRT-8 2010|Chrysler Crossfire Convertible 2008|Chrysler PT Cruiser Convertible 2008
Daewoo Nubira Wagon 2002|Dodge Caliber Wagon 2012|Dodge Caliber Wagon 2007|Dodge Caravan Minivan 1997
Dodge Ram Pickup 3500 Crew Cab 2010|Dodge Ram Pickup 3500 Quad Cab 2009|Dodge Sprinter Cargo Van 2009
Dodge Journey SUV 2012|Dodge Dakota Crew Cab 2010|Dodge Dakota Club Cab 2007|Dodge Magnum Wagon 2008
Dodge Challenger SRT8 2011|Dodge Durango SUV 2012|Dodge Durango SUV 2007|Dodge Charger Sedan 2012
Dodge Charger SRT-8 2009|Eagle Talon Hatchback 1998|FIAT 500 Abarth 2012|FIAT 500 Convertible 2012
Ferrari FF Coupe 2012|Ferrari California Convertible 2012|Ferrari 458 Italia Convertible 2012
Ferrari 458 Italia Coupe 2012|Fisker Karma Sedan 2012|Ford F-450 Super Duty Crew Cab 2012
Ford Mustang Convertible 2007|Ford Freestar Minivan 2007|Ford Expedition EL SUV 2009|Ford Edge SUV 2012
Ford Ranger SuperCab 2011|Ford GT Coupe 2006|Ford F-150 Regular Cab 2012|Ford F-150 Regular Cab 2007
Ford Focus Sedan 2007|Ford E-Series Wagon Van 2012|Ford Fiesta Sedan 2012|GMC Terrain SUV 2012
GMC Savana Van 2012|GMC Yukon Hybrid SUV 2012|GMC Acadia SUV 2012|GMC Canyon Extended Cab 2012
Geo Metro Convertible 1993|HUMMER H3T Crew Cab 2010|HUMMER H2 SUT Crew Cab 2009|Honda Odyssey Minivan 2012
Honda Odyssey Minivan 2007|Honda Accord Coupe 2012|Honda Accord Sedan 2012|Hyundai Veloster Hatchback 2012
Hyundai Santa Fe SUV 2012|Hyundai Tucson SUV 2012|Hyundai Veracruz SUV 2012|Hyundai Sonata Hybrid Sedan 2012
Hyundai Elantra Sedan 2007|Hyundai Accent Sedan 2012|Hyundai Genesis Sedan 2012|Hyundai Sonata Sedan 2012
Hyundai Elantra Touring Hatchback 2012|Hyundai Azera Sedan 2012|Infiniti G Coupe IPL 2012|Infiniti QX56 SUV 2011
Isuzu Ascender SUV 2008|Jaguar XK XKR 2012|Jeep Patriot SUV 2012|Jeep Wrangler SUV 2012|Jeep Liberty SUV 2012
Jeep Grand Cherokee SUV 2012|Jeep Compass SUV 2012|Lamborghini Reventon Coupe 2008|Lamborghini Aventador Coupe 2012
Lamborghini Gallardo LP 570-4 Superleggera 2012|Lamborghini Diablo Coupe 2001|Land Rover Range Rover SUV 2012
Land Rover LR2 SUV 2012|Lincoln Town Car Sedan 2011|MINI Cooper Roadster Convertible 2012
Maybach Landaulet Convertible 2012|Mazda Tribute SUV 2011|McLaren MP4-12C Coupe 2012
Mercedes-Benz 300-Class Convertible 1993|Mercedes-Benz C-Class Sedan 2012|Mercedes-Benz SL-Class Coupe 2009
Mercedes-Benz E-Class Sedan 2012|Mercedes-Benz S-Class Sedan 2012|Mercedes-Benz Sprinter Van 2012
Mitsubishi Lancer Sedan 2012|Nissan Leaf Hatchback 2012|Nissan NV Passenger Van 2012|Nissan Juke Hatchback 2012
Nissan 240SX Coupe 1998|Plymouth Neon Coupe 1999|Porsche Panamera Sedan 2012|Ram C/V Cargo Van Minivan 2012
Rolls-Royce Phantom Drophead Coupe Convertible 2012|Rolls-Royce Ghost Sedan 2012|Rolls-Royce Phantom Sedan 2012
Scion xD Hatchback 2012|Spyker C8 Convertible 2009|Spyker C8 Coupe 2009|Suzuki Aerio Sedan 2007
Suzuki Kizashi Sedan 2012|Suzuki SX4 Hatchback 2012|Suzuki SX4 Sedan 2012|Tesla Model S Sedan 2012
Toyota Sequoia SUV 2012|Toyota Camry Sedan 2012|Toyota Corolla Sedan 2012|Toyota 4Runner SUV 2012
Volkswagen Golf Hatchback 2012|Volkswagen Golf Hatchback 1991|Volkswagen Beetle Hatchback 2012
Volvo C30 Hatchback 2012|Volvo 240 Sedan 1993|Volvo XC90 SUV 2007|smart fortwo Convertible 2012
"""


def car_names() -> list[str]:
    names = [n.strip() for line in CAR_CLASSES.strip().splitlines() for n in line.split("|") if n.strip()]
    assert len(names) == 196 and len(set(names)) == 196, len(names)
    return names


# ----------------------------------------------------------------------------------- Flowers102
FLOWERS = """
pink primrose|hard-leaved pocket orchid|canterbury bells|sweet pea|english marigold|tiger lily|moon orchid
bird of paradise|monkshood|globe thistle|snapdragon|colt's foot|king protea|spear thistle|yellow iris
globe-flower|purple coneflower|peruvian lily|balloon flower|giant white arum lily|fire lily|pincushion flower
fritillary|red ginger|grape hyacinth|corn poppy|prince of wales feathers|stemless gentian|artichoke
sweet william|carnation|garden phlox|love in the mist|mexican aster|alpine sea holly|ruby-lipped cattleya
cape flower|great masterwort|siam tulip|lenten rose|barbeton daisy|daffodil|sword lily|poinsettia
bolero deep blue|wallflower|marigold|buttercup|oxeye daisy|common dandelion|petunia|wild pansy|primula
sunflower|pelargonium|bishop of llandaff|gaura|geranium|orange dahlia|pink-yellow dahlia?|cautleya spicata
japanese anemone|black-eyed susan|silverbush|californian poppy|osteospermum|spring crocus|bearded iris
windflower|tree poppy|gazania|azalea|water lily|rose|thorn apple|morning glory|passion flower|lotus
toad lily|anthurium|frangipani|clematis|hibiscus|columbine|desert-rose|tree mallow|magnolia|cyclamen
watercress|canna lily|hippeastrum|bee balm|ball moss|foxglove|bougainvillea|camellia|mallow
mexican petunia|bromelia|blanket flower|trumpet creeper|blackberry lily
"""
FLOWER_GROUPS = {
    "orchid": ["hard-leaved pocket orchid", "moon orchid", "ruby-lipped cattleya"],
    "poppy": ["corn poppy", "californian poppy", "tree poppy"],
    "iris": ["yellow iris", "bearded iris"],
    "dahlia": ["orange dahlia", "pink-yellow dahlia?", "bishop of llandaff"],
    "thistle": ["globe thistle", "spear thistle"],
    "daisy": ["oxeye daisy", "barbeton daisy", "osteospermum"],
    "anemone": ["japanese anemone", "windflower"],
    # Every class whose common name ends in "lily" (a model says "lily" for all of them).
    "lily": [
        "tiger lily",
        "toad lily",
        "fire lily",
        "peruvian lily",
        "giant white arum lily",
        "canna lily",
        "water lily",
        "sword lily",
        "blackberry lily",
    ],
    "primrose": ["pink primrose", "primula"],
    "coneflower": ["purple coneflower", "black-eyed susan"],
    "bellflower": ["canterbury bells", "balloon flower"],
    "gentian": ["stemless gentian"],
    "crocus": ["spring crocus"],
    "protea": ["king protea"],
}
# Classes that are also the group of another class (an English marigold is a marigold): they stay
# classes, and their group members sit under them.
FLOWER_CLASS_GROUPS = {
    "marigold": ["english marigold"],
    "petunia": ["mexican petunia"],
    "mallow": ["tree mallow"],
}
FLOWER_SYNONYMS = {
    "hard-leaved pocket orchid": ["hard leaved pocket orchid", "paphiopedilum micranthum"],
    "colt's foot": ["coltsfoot", "colts foot", "tussilago"],
    "globe-flower": ["globe flower", "globeflower", "trollius"],
    "ruby-lipped cattleya": ["ruby lipped cattleya"],
    "black-eyed susan": ["black eyed susan", "rudbeckia hirta"],
    "desert-rose": ["desert rose", "adenium"],
    "pink-yellow dahlia?": ["pink and yellow dahlia", "pink-yellow dahlia", "pink yellow dahlia"],
    "barbeton daisy": ["barberton daisy", "gerbera", "gerbera daisy"],
    "sword lily": ["gladiolus"],
    "bird of paradise": ["strelitzia", "bird-of-paradise"],
    "monkshood": ["aconite", "aconitum"],
    "snapdragon": ["antirrhinum"],
    "pincushion flower": ["scabiosa", "scabious"],
    "water lily": ["waterlily", "nymphaea"],
    "frangipani": ["plumeria"],
    "thorn apple": ["datura", "jimsonweed"],
    "common dandelion": ["dandelion", "taraxacum officinale"],
    "osteospermum": ["african daisy", "cape daisy"],
    "gazania": ["treasure flower"],
    "hippeastrum": ["amaryllis"],
    "californian poppy": ["california poppy", "eschscholzia californica"],
    "passion flower": ["passionflower", "passiflora"],
    "foxglove": ["digitalis"],
    "columbine": ["aquilegia"],
    "anthurium": ["flamingo flower"],
    "canna lily": ["canna"],
    "trumpet creeper": ["trumpet vine", "campsis radicans"],
    "blanket flower": ["gaillardia"],
    "lenten rose": ["hellebore", "helleborus orientalis"],
    "purple coneflower": ["echinacea", "echinacea purpurea"],
    "giant white arum lily": ["calla lily", "arum lily", "zantedeschia aethiopica"],
    "fire lily": ["gloriosa", "flame lily", "gloriosa superba"],
    "peruvian lily": ["alstroemeria"],
    "grape hyacinth": ["muscari"],
    "sweet pea": ["lathyrus odoratus"],
    "sunflower": ["helianthus annuus"],
    "poinsettia": ["euphorbia pulcherrima"],
    "morning glory": ["ipomoea"],
    "love in the mist": ["nigella", "nigella damascena"],
    "canterbury bells": ["campanula medium"],
    "balloon flower": ["platycodon"],
    "ball moss": ["tillandsia recurvata", "air plant"],
    "bee balm": ["monarda", "bergamot"],
    "stemless gentian": ["gentiana acaulis"],
    "alpine sea holly": ["eryngium alpinum"],
    "mexican aster": ["cosmos", "cosmos bipinnatus"],
    "great masterwort": ["astrantia", "astrantia major"],
    "siam tulip": ["curcuma alismatifolia"],
    "prince of wales feathers": ["amaranthus hypochondriacus"],
    "garden phlox": ["phlox paniculata"],
    "english marigold": ["calendula", "pot marigold"],
    "wild pansy": ["viola tricolor", "heartsease"],
    "tiger lily": ["lilium lancifolium"],
    "lotus": ["lotus flower", "nelumbo nucifera"],
}


def flower_names() -> list[str]:
    names = [n.strip() for line in FLOWERS.strip().splitlines() for n in line.split("|") if n.strip()]
    assert len(names) == 102 and len(set(names)) == 102, len(names)
    return names


def flowers_taxonomy():
    groups = {g: ("flower", LESS_SPECIFIC, [g + "s"]) for g in FLOWER_GROUPS}
    groups.update({g: ("flower", None, []) for g in FLOWER_CLASS_GROUPS})
    groups["flower"] = ("plant", GENERIC, ["flowers", "flowering plant", "blossom", "bloom", "wildflower"])
    leaf_groups = {
        leaf: g for g, leaves in {**FLOWER_GROUPS, **FLOWER_CLASS_GROUPS}.items() for leaf in leaves
    }
    leaves = {n: FLOWER_SYNONYMS.get(n, []) for n in flower_names()}
    leaf_groups.update({n: "flower" for n in leaves if n not in leaf_groups})
    return grouped_taxonomy("plant", ["plants"], leaves, groups, leaf_groups)


# ----------------------------------------------------------------------------------- Food-101
FOODS = """
apple_pie baby_back_ribs baklava beef_carpaccio beef_tartare beet_salad beignets bibimbap bread_pudding
breakfast_burrito bruschetta caesar_salad cannoli caprese_salad carrot_cake ceviche cheese_plate cheesecake
chicken_curry chicken_quesadilla chicken_wings chocolate_cake chocolate_mousse churros clam_chowder
club_sandwich crab_cakes creme_brulee croque_madame cup_cakes deviled_eggs donuts dumplings edamame
eggs_benedict escargots falafel filet_mignon fish_and_chips foie_gras french_fries french_onion_soup
french_toast fried_calamari fried_rice frozen_yogurt garlic_bread gnocchi greek_salad grilled_cheese_sandwich
grilled_salmon guacamole gyoza hamburger hot_and_sour_soup hot_dog huevos_rancheros hummus ice_cream lasagna
lobster_bisque lobster_roll_sandwich macaroni_and_cheese macarons miso_soup mussels nachos omelette onion_rings
oysters pad_thai paella pancakes panna_cotta peking_duck pho pizza pork_chop poutine prime_rib
pulled_pork_sandwich ramen ravioli red_velvet_cake risotto samosa sashimi scallops seaweed_salad
shrimp_and_grits spaghetti_bolognese spaghetti_carbonara spring_rolls steak strawberry_shortcake sushi tacos
takoyaki tiramisu tuna_tartare waffles
"""
FOOD_GROUPS = {
    # Broad groups first (parents before children); dessert, seafood and meat are generic below.
    "dessert": (
        "food",
        [
            "bread pudding",
            "chocolate mousse",
            "creme brulee",
            "frozen yogurt",
            "ice cream",
            "panna cotta",
            "tiramisu",
        ],
    ),
    "pastry": ("dessert", ["baklava", "cannoli", "beignets", "churros", "donuts", "macarons"]),
    "pie": ("dessert", ["apple pie"]),
    "seafood": (
        "food",
        [
            "oysters",
            "mussels",
            "scallops",
            "fried calamari",
            "crab cakes",
            "grilled salmon",
            "sashimi",
            "ceviche",
            "tuna tartare",
            "shrimp and grits",
        ],
    ),
    "meat": (
        "food",
        [
            "prime rib",
            "pork chop",
            "baby back ribs",
            "beef carpaccio",
            "beef tartare",
            "chicken wings",
            "peking duck",
        ],
    ),
    "egg dish": ("food", ["eggs benedict", "deviled eggs", "omelette", "huevos rancheros"]),
    "rice dish": ("food", ["fried rice", "risotto", "paella", "bibimbap"]),
    "noodles": ("food", ["pad thai"]),
    "curry": ("food", ["chicken curry"]),
    "salad": ("food", ["beet salad", "caesar salad", "caprese salad", "greek salad", "seaweed salad"]),
    "cake": (
        "dessert",
        [
            "carrot cake",
            "chocolate cake",
            "red velvet cake",
            "cheesecake",
            "cup cakes",
            "strawberry shortcake",
        ],
    ),
    "soup": (
        "food",
        [
            "clam chowder",
            "french onion soup",
            "hot and sour soup",
            "lobster bisque",
            "miso soup",
        ],
    ),
    "noodle soup": ("soup", ["pho", "ramen"]),
    "sandwich": (
        "food",
        [
            "club sandwich",
            "grilled cheese sandwich",
            "lobster roll sandwich",
            "pulled pork sandwich",
            "croque madame",
        ],
    ),
    "pasta": ("food", ["lasagna", "ravioli", "gnocchi", "macaroni and cheese"]),
    "spaghetti": ("pasta", ["spaghetti bolognese", "spaghetti carbonara"]),
    "dumplings": ("food", ["gyoza"]),
    "steak": ("meat", ["filet mignon"]),
}
FOOD_GROUP_KIND = {"dessert": GENERIC, "seafood": GENERIC, "meat": GENERIC}
FOOD_GROUP_SYNONYMS = {
    "dessert": ["desserts", "sweet", "sweets"],
    "pastry": ["pastries"],
    "meat": ["meat dish", "meats"],
    "egg dish": ["eggs", "egg"],
    "rice dish": ["rice"],
    "noodles": ["noodle dish", "noodle"],
    "noodle soup": ["noodle soups"],
    "curry": ["curries"],
}
FOOD_SYNONYMS = {
    "cup cakes": ["cupcakes", "cupcake", "cup cake"],
    "donuts": ["doughnuts", "donut", "doughnut"],
    "macarons": ["macaron"],
    "churros": ["churro"],
    "tacos": ["taco"],
    "waffles": ["waffle"],
    "pancakes": ["pancake"],
    "dumplings": ["dumpling"],
    "oysters": ["oyster"],
    "mussels": ["mussel"],
    "scallops": ["scallop"],
    "escargots": ["escargot"],
    "beignets": ["beignet"],
    "crab cakes": ["crab cake"],
    "chicken wings": ["buffalo wings", "chicken wing"],
    "spring rolls": ["spring roll"],
    "onion rings": ["onion ring"],
    "french fries": ["fries", "chips", "frites"],
    "deviled eggs": ["devilled eggs", "deviled egg"],
    "creme brulee": ["crème brûlée", "creme brûlée"],
    "hot dog": ["hotdog"],
    "hamburger": ["burger"],
    "omelette": ["omelet"],
    "lasagna": ["lasagne"],
    "spaghetti bolognese": ["spaghetti bolognaise", "spaghetti alla bolognese"],
    "ceviche": ["seviche", "cebiche"],
    "hummus": ["houmous", "hummous", "humus"],
    "gyoza": ["potsticker", "potstickers"],
    "beef tartare": ["steak tartare"],
    "fried calamari": ["calamari"],
    "frozen yogurt": ["froyo", "frozen yoghurt"],
    "macaroni and cheese": ["mac and cheese", "mac n cheese", "macaroni cheese"],
    "cannoli": ["cannolo"],
    "samosa": ["samosas"],
    "nachos": ["nacho"],
    "filet mignon": ["fillet mignon"],
    "pork chop": ["pork chops"],
    "baby back ribs": ["pork ribs", "barbecue ribs"],
    "fish and chips": ["fish n chips"],
    "shrimp and grits": ["shrimp n grits"],
    "ice cream": ["gelato"],
    "panna cotta": ["pannacotta"],
    "tiramisu": ["tiramisù"],
    "pho": ["phở"],
    "peking duck": ["beijing duck"],
    "huevos rancheros": ["ranch-style eggs"],
    "club sandwich": ["clubhouse sandwich"],
}


def food_taxonomy():
    names = [readable_label(n) for n in FOODS.split()]
    assert len(names) == 101 and len(set(names)) == 101, len(names)
    groups = {
        g: (
            parent,
            FOOD_GROUP_KIND.get(g, LESS_SPECIFIC),
            FOOD_GROUP_SYNONYMS.get(g, [g + "s"] if not g.endswith("s") else []),
        )
        for g, (parent, _) in FOOD_GROUPS.items()
    }
    leaf_groups = {leaf: g for g, (_, leaves) in FOOD_GROUPS.items() for leaf in leaves}
    leaves = {n: FOOD_SYNONYMS.get(n, []) for n in names if n not in FOOD_GROUPS}
    # "dumplings" and "steak" are classes *and* parents (gyoza is a dumpling): they stay classes.
    for group in ("dumplings", "steak"):
        groups[group] = (FOOD_GROUPS[group][0], None, FOOD_SYNONYMS.get(group, []))
    return grouped_taxonomy(
        "food",
        ["dish", "meal", "cuisine", "foods"],
        leaves,
        groups,
        {**{n: "food" for n in leaves}, **leaf_groups},
    )


# ----------------------------------------------------------------------------------- Oxford-IIIT Pet
CATS = [
    "Abyssinian",
    "Bengal",
    "Birman",
    "Bombay",
    "British Shorthair",
    "Egyptian Mau",
    "Maine Coon",
    "Persian",
    "Ragdoll",
    "Russian Blue",
    "Siamese",
    "Sphynx",
]
DOGS = [
    "american bulldog",
    "american pit bull terrier",
    "basset hound",
    "beagle",
    "boxer",
    "chihuahua",
    "english cocker spaniel",
    "english setter",
    "german shorthaired",
    "great pyrenees",
    "havanese",
    "japanese chin",
    "keeshond",
    "leonberger",
    "miniature pinscher",
    "newfoundland",
    "pomeranian",
    "pug",
    "saint bernard",
    "samoyed",
    "scottish terrier",
    "shiba inu",
    "staffordshire bull terrier",
    "wheaten terrier",
    "yorkshire terrier",
]
PET_SYNONYMS = {
    "american pit bull terrier": ["pit bull", "pitbull", "american pit bull", "pit bull terrier"],
    "german shorthaired": ["german shorthaired pointer", "german short-haired pointer", "gsp"],
    "great pyrenees": ["pyrenean mountain dog"],
    "saint bernard": ["st bernard", "st. bernard"],
    "wheaten terrier": ["soft-coated wheaten terrier", "soft coated wheaten terrier"],
    "yorkshire terrier": ["yorkie"],
    "staffordshire bull terrier": ["staffy", "staffie", "staffordshire terrier"],
    "miniature pinscher": ["min pin", "zwergpinscher"],
    "shiba inu": ["shiba"],
    "newfoundland": ["newfoundland dog", "newfie"],
    "basset hound": ["basset"],
    "english cocker spaniel": ["english cocker"],
    "scottish terrier": ["scottie", "scottie dog", "aberdeen terrier"],
    "Sphynx": ["sphynx cat", "sphinx cat"],
    "Maine Coon": ["maine coon cat"],
    "British Shorthair": ["british shorthair cat", "british blue"],
    "Bombay": ["bombay cat"],
    "Egyptian Mau": ["egyptian mau cat"],
    "Russian Blue": ["russian blue cat"],
}


# Breed groups a model names (besides "terrier"), each a set of the dataset's breeds.
DOG_GROUPS = {
    "spaniel": (["spaniels"], ["english cocker spaniel"]),
    "setter": (["setters"], ["english setter"]),
    "pointer": (["pointers", "pointing dog"], ["german shorthaired"]),
    "hound": (["hounds", "hound dog"], ["basset hound", "beagle"]),
    "bulldog": (["bulldogs"], ["american bulldog"]),
    "spitz": (["spitz dog", "spitz-type dog"], ["keeshond", "pomeranian", "samoyed", "shiba inu"]),
    "pinscher": (["pinschers"], ["miniature pinscher"]),
}


def pets_taxonomy():
    assert len(CATS) + len(DOGS) == 37
    groups = {
        "cat": ("animal", GENERIC, ["domestic cat", "kitten", "cats", "house cat"]),
        "dog": ("animal", GENERIC, ["domestic dog", "puppy", "dogs", "canine"]),
        "terrier": ("dog", LESS_SPECIFIC, ["terriers"]),
        **{g: ("dog", LESS_SPECIFIC, synonyms) for g, (synonyms, _) in DOG_GROUPS.items()},
    }
    leaves = {}
    for cat in CATS:
        leaves[cat] = [f"{cat} cat", *PET_SYNONYMS.get(cat, [])]
    for dog in DOGS:
        leaves[dog] = PET_SYNONYMS.get(dog, [])
    leaf_groups = {
        **{c: "cat" for c in CATS},
        **{d: "terrier" if d.endswith("terrier") else "dog" for d in DOGS},
        **{d: g for g, (_, members) in DOG_GROUPS.items() for d in members},
    }
    return grouped_taxonomy("animal", ["pet", "animals"], leaves, groups, leaf_groups)


def build_all() -> dict[str, object]:
    cub, dropped = cub_taxonomy()
    if dropped:
        print("CUB: dropped ambiguous synonyms:", dropped, file=sys.stderr)
    return {
        "cub200": cub,
        "fgvc_aircraft": aircraft_taxonomy(),
        "stanford_cars": car_taxonomy_from_names(car_names()),
        "flowers102": flowers_taxonomy(),
        "food101": food_taxonomy(),
        "oxford_pets": pets_taxonomy(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped files, write nothing")
    args = parser.parse_args()
    stale = []
    for name, taxonomy in build_all().items():
        target = OUT / f"{name}.json"
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                fresh = Path(tmp) / "t.json"
                write_taxonomy(taxonomy, fresh)
                if not target.is_file() or fresh.read_text() != target.read_text():
                    stale.append(name)
        else:
            write_taxonomy(taxonomy, target)
        print(f"{name}: {len(taxonomy.nodes)} nodes, {len(taxonomy.leaves())} leaves")
    if stale:
        print(f"stale taxonomies: {stale}; run python scripts/build_taxonomies.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
