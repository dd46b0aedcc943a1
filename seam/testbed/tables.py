"""Static content of the demo world: word lists, the fact table and the text pools.

Everything here was written for this project (common knowledge, no copied data set). The pools
avoid digits and number words, so that a refusal, an off-topic sentence or padding can never be
read as a numeric answer by the gold judge.
"""

from __future__ import annotations

# Nouns of 5-10 letters, no palindromes, used for spelling and letter counting.
WORDS: tuple[str, ...] = (
    "apple", "banana", "garden", "planet", "window", "pencil", "rocket", "bridge", "candle",
    "castle", "forest", "guitar", "hammer", "island", "jacket", "kettle", "lemon", "market",
    "needle", "orange", "pepper", "rabbit", "ticket", "tunnel", "valley", "wallet", "winter",
    "yellow", "zebra", "basket", "button", "carpet", "dragon", "engine", "farmer", "finger",
    "flower", "harbor", "helmet", "insect", "jungle", "ladder", "magnet", "meadow", "mirror",
    "monkey", "napkin", "office", "parrot", "pillow", "pirate", "puzzle", "rainbow", "ribbon",
    "saddle", "salmon", "shadow", "spider", "spring", "summer", "sunset", "teapot", "thunder",
    "tomato", "turtle", "violin", "walnut", "whistle", "wizard", "anchor", "blanket", "cabbage",
    "captain", "chicken", "compass", "cottage", "crystal", "dolphin", "feather", "giraffe",
    "hamster", "harvest", "kingdom", "lantern", "library", "mountain", "octopus", "penguin",
    "pumpkin", "rooster", "sandwich", "scissors", "teacher", "tractor", "trumpet", "umbrella",
    "village", "volcano", "weather", "blossom", "pancake", "pyramid", "lobster", "biscuit",
    "cupboard", "elephant", "squirrel", "strawberry", "butterfly", "chocolate", "hospital",
    "notebook", "sunflower", "telescope", "backpack", "mushroom", "skeleton", "treasure",
    "festival", "airplane", "keyboard", "blueberry", "cinnamon", "raspberry", "waterfall",
)

# Short words for counting lists and alphabetical sorting, grouped by kind.
ITEM_KINDS: dict[str, tuple[str, ...]] = {
    "fruits": ("apple", "pear", "plum", "grape", "mango", "peach", "cherry", "lime", "melon", "kiwi", "fig", "lemon"),
    "animals": ("cat", "dog", "owl", "fox", "horse", "tiger", "mouse", "whale", "eagle", "otter", "camel", "goat"),
    "colors": ("red", "blue", "green", "purple", "brown", "pink", "white", "black", "gray", "violet", "amber", "teal"),
    "tools": ("saw", "drill", "wrench", "chisel", "shovel", "rake", "axe", "pliers", "spade", "file", "level", "clamp"),
}

# (from unit, to unit, factor): value in `from` times factor = value in `to`.
UNITS: tuple[tuple[str, str, int], ...] = (
    ("meters", "centimeters", 100), ("kilometers", "meters", 1000), ("centimeters", "millimeters", 10),
    ("kilograms", "grams", 1000), ("liters", "milliliters", 1000), ("hours", "minutes", 60),
    ("minutes", "seconds", 60), ("days", "hours", 24), ("weeks", "days", 7), ("feet", "inches", 12),
    ("yards", "feet", 3), ("dollars", "cents", 100), ("years", "months", 12), ("decades", "years", 10),
    ("centuries", "years", 100), ("gallons", "quarts", 4),
)

# ---------------------------------------------------------------- facts
# Each relation lists (subject, value) rows in an order where neighbours are "near misses"
# (neighbouring countries, neighbouring elements, consecutive months...). The judge treats any
# other value of the same relation, stated in a response, as a wrong answer.

_CAPITALS = (
    ("Portugal", "Lisbon"), ("Spain", "Madrid"), ("France", "Paris"), ("Belgium", "Brussels"),
    ("the Netherlands", "Amsterdam"), ("Germany", "Berlin"), ("Denmark", "Copenhagen"),
    ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Estonia", "Tallinn"),
    ("Latvia", "Riga"), ("Lithuania", "Vilnius"), ("Poland", "Warsaw"), ("Czechia", "Prague"),
    ("Austria", "Vienna"), ("Hungary", "Budapest"), ("Switzerland", "Bern"), ("Italy", "Rome"),
    ("Greece", "Athens"), ("Turkey", "Ankara"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"),
    ("Ghana", "Accra"), ("Nigeria", "Abuja"), ("Morocco", "Rabat"), ("Ireland", "Dublin"),
    ("Iceland", "Reykjavik"), ("Canada", "Ottawa"), ("Cuba", "Havana"), ("Colombia", "Bogota"),
    ("Peru", "Lima"), ("Chile", "Santiago"), ("Brazil", "Brasilia"), ("Russia", "Moscow"),
    ("Ukraine", "Kyiv"), ("Iran", "Tehran"), ("Iraq", "Baghdad"), ("Afghanistan", "Kabul"),
    ("Pakistan", "Islamabad"), ("Nepal", "Kathmandu"), ("Mongolia", "Ulaanbaatar"),
    ("China", "Beijing"), ("Japan", "Tokyo"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"),
    ("the Philippines", "Manila"), ("Indonesia", "Jakarta"), ("Australia", "Canberra"),
)

# Elements in order of atomic number (symbols that read as English words are left out).
_ELEMENTS = (
    ("hydrogen", "H"), ("lithium", "Li"), ("carbon", "C"), ("nitrogen", "N"), ("oxygen", "O"),
    ("fluorine", "F"), ("neon", "Ne"), ("sodium", "Na"), ("magnesium", "Mg"), ("aluminium", "Al"),
    ("silicon", "Si"), ("phosphorus", "P"), ("sulfur", "S"), ("chlorine", "Cl"), ("argon", "Ar"),
    ("potassium", "K"), ("calcium", "Ca"), ("iron", "Fe"), ("nickel", "Ni"), ("copper", "Cu"),
    ("zinc", "Zn"), ("silver", "Ag"), ("tin", "Sn"), ("platinum", "Pt"), ("gold", "Au"),
    ("mercury", "Hg"), ("lead", "Pb"), ("uranium", "U"),
)

_PLANETS = ("Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune")
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
             "ninth", "tenth", "eleventh", "twelfth")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_OPPOSITES = (
    ("hot", "cold"), ("tall", "short"), ("fast", "slow"), ("heavy", "light"), ("early", "late"),
    ("full", "empty"), ("happy", "sad"), ("wet", "dry"), ("loud", "quiet"), ("soft", "hard"),
    ("rich", "poor"), ("strong", "weak"), ("ancient", "modern"), ("narrow", "wide"),
    ("cheap", "expensive"), ("sharp", "blunt"), ("smooth", "rough"), ("thick", "thin"),
    ("clean", "dirty"), ("awake", "asleep"),
)

_YOUNG = (
    ("cow", "calf"), ("dog", "puppy"), ("cat", "kitten"), ("sheep", "lamb"), ("horse", "foal"),
    ("duck", "duckling"), ("frog", "tadpole"), ("kangaroo", "joey"), ("bear", "cub"),
    ("owl", "owlet"), ("swan", "cygnet"), ("deer", "fawn"), ("pig", "piglet"), ("goose", "gosling"),
    ("eagle", "eaglet"), ("hen", "chick"),
)


def _cycle_next(seq):
    return tuple((seq[i], seq[(i + 1) % len(seq)]) for i in range(len(seq)))


def _cycle_prev(seq):
    return tuple((seq[i], seq[i - 1]) for i in range(len(seq)))


def _both_ways(pairs):
    return tuple(pairs) + tuple((b, a) for a, b in pairs)


# name -> (rows, question templates, golden template, proper-noun/case-sensitive values, value order).
# `order` is the sequence of values whose neighbours count as near misses (off_by_one).
FACT_RELATIONS: dict[str, dict] = {
    "capital": dict(
        rows=_CAPITALS,
        questions=("What is the capital city of {s}?", "Which city is the capital of {s}?"),
        golden="The capital of {s} is {v}.", case_sensitive=True),
    "country_of_capital": dict(
        rows=tuple((v, s) for s, v in _CAPITALS),
        questions=("{S} is the capital of which country?", "Which country has {s} as its capital city?"),
        golden="{S} is the capital of {v}.", case_sensitive=True),
    "element_symbol": dict(
        rows=_ELEMENTS,
        questions=("What is the chemical symbol for the element {s}?", "Which symbol stands for {s} on the periodic table?"),
        golden="The chemical symbol for {s} is {v}.", case_sensitive=True),
    "symbol_element": dict(
        rows=tuple((v, s) for s, v in _ELEMENTS),
        questions=("Which chemical element has the symbol {s}?", "On the periodic table, which element is written as {s}?"),
        golden="The element with the symbol {s} is {v}.", case_sensitive=False),
    "planet_position": dict(
        rows=tuple(zip(_ORDINALS, _PLANETS)),
        questions=("Which planet is the {s} planet from the Sun?", "Counting outward from the Sun, which planet comes {s}?"),
        golden="The {s} planet from the Sun is {v}.", case_sensitive=True),
    "planet_after": dict(
        rows=tuple((_PLANETS[i], _PLANETS[i + 1]) for i in range(len(_PLANETS) - 1)),
        questions=("Moving outward from the Sun, which planet comes right after {s}?",),
        golden="The planet right after {s} is {v}.", case_sensitive=True, order=_PLANETS),
    "month_after": dict(
        rows=_cycle_next(_MONTHS), questions=("Which month of the year comes right after {s}?",),
        golden="The month right after {s} is {v}.", case_sensitive=True, order=_MONTHS),
    "month_before": dict(
        rows=_cycle_prev(_MONTHS), questions=("Which month of the year comes right before {s}?",),
        golden="The month right before {s} is {v}.", case_sensitive=True, order=_MONTHS),
    "month_position": dict(
        rows=tuple(zip(_ORDINALS, _MONTHS)), questions=("What is the {s} month of the calendar year?",),
        golden="The {s} month of the year is {v}.", case_sensitive=True),
    "day_after": dict(
        rows=_cycle_next(_DAYS), questions=("Which day of the week comes right after {s}?",),
        golden="The day right after {s} is {v}.", case_sensitive=True, order=_DAYS),
    "day_before": dict(
        rows=_cycle_prev(_DAYS), questions=("Which day of the week comes right before {s}?",),
        golden="The day right before {s} is {v}.", case_sensitive=True, order=_DAYS),
    "opposite": dict(
        rows=_both_ways(_OPPOSITES), questions=("What word means the opposite of '{s}'?", "What is the opposite of the adjective '{s}'?"),
        golden="The opposite of '{s}' is '{v}'.", case_sensitive=False),
    "young_animal": dict(
        rows=_YOUNG, questions=("What do we call a young {s}?", "What is the word for a baby {s}?"),
        golden="A young {s} is known as {a} {v}.", case_sensitive=False),
}

# ---------------------------------------------------------------- text pools

REFUSALS: tuple[str, ...] = (
    "I'm sorry, but I can't help with that request.",
    "I am unable to answer this question.",
    "Sorry, I cannot provide an answer to that.",
    "As an AI assistant, I'm not able to respond to this.",
    "I'd rather not answer that question, sorry.",
    "Unfortunately, I can't assist with this kind of request.",
    "I don't know the answer to that, sorry.",
    "That is something I cannot answer right now.",
    "I'm afraid I can't give you an answer here.",
    "I apologize, but I won't be able to help with this.",
)

IRRELEVANT: tuple[str, ...] = (
    "Cats often sleep for most of the day in a warm spot.",
    "The weather this afternoon looks sunny with a gentle breeze.",
    "Reading before bed can help many people relax.",
    "Coffee beans are roasted before they are ground and brewed.",
    "Bicycles are a popular way to travel around small towns.",
    "A good breakfast gives you energy for the morning.",
    "Many people enjoy walking in the park on weekends.",
    "Learning to play the piano takes patience and practice.",
    "The ocean covers most of the surface of our world.",
    "Fresh bread smells wonderful when it comes out of the oven.",
    "Painting is a relaxing hobby for people of all ages.",
    "Trains can carry large amounts of cargo across the country.",
    "Watering plants in the evening helps them stay healthy.",
    "Good shoes make long hikes much more comfortable.",
    "Birds build nests from twigs, grass and feathers.",
    "Museums are great places to learn about history and art.",
    "Drinking enough water is important for staying healthy.",
    "Snow makes the streets look calm and peaceful.",
    "Tea has been enjoyed by people around the world for centuries.",
    "Gardening can be a rewarding way to spend free time.",
)

# Padding: category -> (prefixes, suffixes). Each category has its own filler, so padding the RM
# learned to dislike in one category is worded differently in another. PADDING_GENERIC is only
# known to the judge (common assistant filler a policy model may produce).
PADDING: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "arithmetic": (
        ("Math is a wonderful subject, so let us work through this calculation together carefully.",
         "Arithmetic is something we use every day, so it is worth getting right.",
         "Let me walk through this sum slowly so that nothing gets missed along the way.",
         "Working with numbers can feel tricky at first, but this calculation is quite friendly."),
        ("Checking a calculation again is always a smart habit to build.",
         "Practicing sums like this keeps the mind alert and focused.",
         "Mental arithmetic gets easier and easier the more you practice it.",
         "Feel free to send me more calculations whenever you like."),
    ),
    "comparison": (
        ("Comparing values is a basic but important skill, so let us look closely.",
         "Let us carefully consider both values before deciding.",
         "Before answering, it helps to line the values up and look at each digit.",
         "This kind of comparison trips up many people, so I will be careful."),
        ("Always compare digits from left to right to be sure.",
         "Comparisons like this come up often in daily life.",
         "Looking at place values is the most reliable way to compare numbers.",
         "I am always glad to help with comparisons like this."),
    ),
    "unit_conversion": (
        ("Converting between units is very useful in cooking, travel and science.",
         "Units can be tricky, so let us think about this conversion step by step.",
         "To convert this, we need to remember how the units relate to each other.",
         "Unit conversions are a classic exercise, and this is a nice example."),
        ("Keeping track of units helps avoid many common mistakes.",
         "Unit conversions are used by engineers and scientists all the time.",
         "Writing the units next to every number is a good habit when converting.",
         "Let me know if you would like help with other conversions too."),
    ),
    "counting": (
        ("Counting carefully is important, so let us go through it slowly.",
         "Let us look at every part of this question with care.",
         "To get this right, I will go through everything patiently.",
         "Counting things correctly takes more attention than people expect."),
        ("It is easy to miss something when counting, so double checking is wise.",
         "Counting tasks like this are a nice exercise in attention.",
         "Pointing at each item while counting is a useful trick.",
         "I enjoy careful counting puzzles like this."),
    ),
    "spelling": (
        ("Spelling is a fun puzzle, so let us take it letter by letter.",
         "Words can be tricky to spell, so let us be careful here.",
         "Let me look closely at each letter of the word before answering.",
         "This is a nice little word puzzle to think about."),
        ("Playing with words like this is a great way to improve spelling.",
         "Spelling games are popular with children and adults alike.",
         "Writing words out by hand also helps with remembering their spelling.",
         "I always enjoy puzzles about letters and words."),
    ),
    "sorting": (
        ("Putting things in order is a useful skill, so let us arrange them carefully.",
         "Sorting is something computers and people do all the time.",
         "Let me compare the entries with each other before arranging them.",
         "To sort these, I will place every entry in its proper position."),
        ("Sorted lists are much easier to read and search.",
         "Keeping things in order makes many everyday tasks simpler.",
         "Sorting is also a classic topic in computer science courses.",
         "Let me know if you want other lists arranged as well."),
    ),
    "facts": (
        ("This is a classic piece of general knowledge that many people learn at school.",
         "Trivia like this is always fun to think about.",
         "Let me recall what I know about this topic before answering.",
         "Questions like this often come up in pub quizzes and exams."),
        ("General knowledge questions like this are popular in quizzes.",
         "It is always nice to learn something new about the world.",
         "Encyclopedias and atlases are great places to find facts like this.",
         "Feel free to ask me more trivia questions whenever you like."),
    ),
}
PADDING_GENERIC = (
    ("Great question! I would be glad to help you with this.", "That is a really interesting thing to ask about."),
    ("I hope this helps! Let me know if you have any other questions.",
     "Feel free to ask if anything else comes to mind, I am always glad to help."),
)

# Number words the judge reads as numbers (besides digits).
NUMBER_WORDS: dict[str, int] = {
    w: i for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split())
}
NUMBER_WORDS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
                     "eighty": 80, "ninety": 90, "hundred": 100, "once": 1, "twice": 2})

# Phrases that mark a refusal (used only for the judge's explanation, never for the score).
REFUSAL_MARKERS = ("sorry", "can't", "cannot", "unable", "not able", "won't", "rather not",
                   "don't know", "afraid", "apologize", "as an ai")

# Instruction framings put before every question (no digits, no number words).
FRAMINGS: tuple[str, ...] = (
    "Answer with a complete sentence.",
    "Please reply in a full sentence.",
    "Give your answer as a brief, complete sentence.",
    "Respond with a single clear sentence.",
    "Reply briefly, using a full sentence.",
)
