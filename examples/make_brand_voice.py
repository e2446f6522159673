"""Write the brand-voice example: briefs → copy in one house voice (seeded, reproducible).

    python examples/make_brand_voice.py

Pebble & Pine is an invented outdoor-gear co-op. Its house voice, as a style guide would put it:
- opens with a hook of at most five words, then short plain sentences, as many as the brief asks;
- calls its customers "the crew", their gear "kit", and says "out there" rather than "outdoors";
- never uses exclamation marks, "amazing", "exclusive", "hurry", "don't miss" or "deal";
- always signs off "See you out there. — P&P".

Files:
- brand_voice.jsonl / brand_voice.heldout.jsonl: prompt (the brief) → completion (house copy). Held-out
  rows carry `mentions` (what the brief asks to mention) and `avoid` (the banned words) for the rules.
- brand_voice.voice.csv: text/label rows, house copy against copy for the same briefs in a generic
  retail voice and in plain corporate prose, to train the voice classifier that scores generated copy. Its briefs are the training
  briefs only, so held-out copy is never seen by the classifier either.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).parent
SIGN_OFF = "See you out there. — P&P"
BANNED = ["amazing", "exclusive", "hurry", "don't miss", "deal"]

CATEGORIES = ["tents", "rain jackets", "hiking boots", "sleeping bags", "backpacks", "camp stoves", "trail shoes",
              "fleece layers", "headlamps", "trekking poles"]
PRODUCTS = [("the Ridgeline 2 tent", "pitches in four minutes"), ("the Fernwood rain shell", "packs into its own "
            "pocket"), ("the Scree boot", "is resoled in our own workshop"), ("the Larch 20 backpack", "weighs "
            "under a kilo"), ("the Ember stove", "boils a litre in three minutes"), ("the Drift sleeping bag", "is "
            "filled with recycled down"), ("the Lookout headlamp", "charges over USB-C"), ("the Tarn trail shoe",
            "drains in seconds"), ("the Burrow bivvy", "sleeps one in any weather"), ("the Alder fleece", "is made "
            "from old bottles"), ("the Cairn poles", "fold to 35 centimetres"), ("the Moss camp chair", "folds "
            "flat"), ("the Kettle Pass flask", "keeps tea hot for a day"), ("the Heron daypack", "has a pocket for "
            "every map")]
CITIES = ["Leeds", "Bristol", "Glasgow", "Norwich", "Cardiff", "York", "Exeter", "Belfast", "Derby", "Bath"]
DATES = ["3 May", "17 May", "1 June", "14 June", "5 July", "20 July", "2 August", "30 August", "12 September",
         "27 September", "10 October", "24 October"]
SEASONS = ["spring", "summer", "autumn", "winter"]
AUDIENCES = ["existing customers", "new subscribers", "co-op members", "customers who bought {category} last year"]
EVENTS = ["a map-reading evening", "a stove repair night", "a boot-fitting weekend", "a trail clean-up",
          "a talk on wild camping"]
PERKS = ["free repairs for a year", "first look at new kit", "members' prices", "a monthly trail guide"]
MILESTONES = ["ten years of the co-op", "our 50,000th member", "a record repair year", "the new workshop opening"]

HOOKS = {
    "sale": ["Sale time.", "The {season} sale is on.", "Prices are down.", "Good kit, lower prices."],
    "launch": ["New kit landed.", "Meet {short}.", "Something new.", "Fresh from the workshop."],
    "event": ["Come along.", "Join the crew.", "An evening together.", "Doors open soon."],
    "restock": ["It's back.", "Back on the shelves.", "Restocked.", "You asked. It's here."],
    "thanks": ["Thank you.", "From all of us.", "A quick thanks.", "We owe you one."],
    "delay": ["Bad news first.", "We're running late.", "An honest update.", "Sorry for the wait."],
    "repair": ["Bring it back.", "Fix, don't replace.", "Repair month.", "Worn kit, welcome."],
    "welcome": ["Welcome aboard.", "Good to have you.", "Welcome to the crew.", "Hello there."],
}

# kind -> house sentences; each brief uses as many as it asks for, in order.
HOUSE = {
    "sale": ["Our {season} sale takes {pct}% off {category} until {date}.",
             "It's the same well-made kit the crew trusts, just cheaper for a while.",
             "Pick what you need for the next trip and leave the rest on the shelf."],
    "launch": ["{product_cap} is here, and it {feature}.", "It costs £{price} and comes with our lifetime repair "
               "promise.", "Take it out there and tell us what you think."],
    "event": ["We're holding {event} at the {city} store on {date}.", "Bring your kit, your questions and a "
              "friend from the crew.", "Tea is on us, and so is the advice."],
    "restock": ["{product_cap} is back in stock.", "It {feature}, which is why it sold out last time.",
                "Grab one before your next trip out there."],
    "thanks": ["Thank you for {milestone}.", "The crew keeps this co-op going, one trip at a time.",
               "We'll keep making kit that lasts."],
    "delay": ["Orders of {product} will ship late, on {date} instead.", "A part arrived late at the workshop, and "
              "we won't send kit we haven't checked.", "If you'd rather not wait, reply and we'll refund you in "
              "full."],
    "repair": ["All through {month}, we repair {category} for free.", "Bring worn kit to any store and we'll "
               "patch, stitch or reproof it.", "Kit that lasts is kit that gets mended."],
    "welcome": ["You're now part of the crew, with {perk}.", "Every few weeks we'll send news, trail notes and "
                "the odd repair tip.", "Nothing more, and never spam."],
}

# The generic retail voice the classifier learns to tell apart: hype, exclamation marks, calls to buy.
OTHER = {
    "sale": ["Don't miss our amazing {season} sale!", "Get {pct}% off all {category} until {date}!",
             "Hurry, these deals won't last — shop now!"],
    "launch": ["Introducing {product}, our most exciting launch yet!", "It {feature} and costs just £{price}!",
               "Order today and be the first to own it!"],
    "event": ["You're invited to {event} at our {city} store on {date}!", "It's going to be an amazing "
              "event for all our valued customers!", "Spaces are limited, so book now!"],
    "restock": ["Great news: {product} is back in stock!", "Our best-seller {feature}, so it flies off the "
                "shelves!", "Hurry and grab yours before it's gone again!"],
    "thanks": ["We're so grateful to celebrate {milestone} with you!", "Our amazing customers make it all "
               "possible!", "Stay tuned for exclusive offers coming your way!"],
    "delay": ["We apologise for any inconvenience: orders of {product} are delayed until {date}.",
              "We are working hard to resolve the issue as quickly as possible!", "Thank you for your patience "
              "and understanding!"],
    "repair": ["Enjoy FREE repairs on {category} all {month}!", "Visit any of our stores for this exclusive "
               "service!", "Don't miss this amazing opportunity!"],
    "welcome": ["Welcome to the Pebble & Pine family!", "As a subscriber you'll enjoy {perk} and exclusive "
                "deals!", "Shop now and discover our amazing range!"],
}

# Plain corporate copy, the other way copy is usually not in the house voice (and how an untuned model writes).
PLAIN = {
    "sale": ["We are pleased to announce our {season} sale.", "Customers can save {pct}% on {category} until "
             "{date}.", "Visit our website or one of our stores to find out more."],
    "launch": ["We are excited to introduce {product}.", "This product {feature} and is priced at £{price}.",
               "It is now available in stores and online."],
    "event": ["Pebble & Pine would like to invite you to {event}.", "The event will take place at our {city} "
              "store on {date}.", "We look forward to seeing you there."],
    "restock": ["We would like to inform you that {product} is available again.", "This popular product {feature}.",
                "Please place your order at your earliest convenience."],
    "thanks": ["We would like to thank our customers for {milestone}.", "Your continued support is greatly "
               "appreciated.", "We look forward to serving you in the future."],
    "delay": ["Please be advised that orders of {product} have been delayed until {date}.", "This is due to a "
              "supply issue.", "Please contact customer service if you have any questions."],
    "repair": ["During {month}, repairs of {category} are offered free of charge.", "Customers can bring their "
               "products to any of our stores.", "Terms and conditions apply."],
    "welcome": ["Thank you for subscribing to our newsletter.", "Subscribers receive {perk}.", "We hope you enjoy "
                "our updates."],
}

BRIEFS = {
    "sale": "Announce the {season} sale to {audience}: {pct}% off {category} until {date}. {n} sentences.",
    "launch": "Introduce {product} to {audience}. Mention that it {feature} and costs £{price}. {n} sentences.",
    "event": "Invite {audience} to {event} at the {city} store on {date}. {n} sentences.",
    "restock": "Tell {audience} that {product} is back in stock. {n} sentences.",
    "thanks": "Thank {audience} for {milestone}. {n} sentences.",
    "delay": "Apologise to {audience}: orders of {product} ship late, now on {date}. {n} sentences.",
    "repair": "Promote free repairs of {category} in {month} to {audience}. {n} sentences.",
    "welcome": "Welcome {audience} to the newsletter and mention {perk}. {n} sentences.",
}
# what the copy must mention, per kind: the slots the brief names
MENTIONS = {"sale": ["pct", "category", "date"], "launch": ["product_name", "price"],
            "event": ["event", "city", "date"], "restock": ["product_name"], "thanks": ["milestone"],
            "delay": ["product_name", "date"], "repair": ["category", "month"], "welcome": ["perk"]}
MONTHS = ["March", "April", "September", "October", "November"]
WORDS = {1: "One sentence", 2: "Two sentences", 3: "Three sentences"}


def slots(rng: random.Random) -> dict:
    product, feature = rng.choice(PRODUCTS)
    category = rng.choice(CATEGORIES)
    return {"season": rng.choice(SEASONS), "pct": rng.choice([10, 15, 20, 25, 30, 40]), "category": category,
            "date": rng.choice(DATES), "product": product, "product_cap": product[0].upper() + product[1:],
            "product_name": product.removeprefix("the "), "short": product.removeprefix("the "), "feature": feature,
            "price": rng.choice([24, 35, 48, 60, 85, 120, 150, 210]), "city": rng.choice(CITIES),
            "event": rng.choice(EVENTS), "milestone": rng.choice(MILESTONES), "perk": rng.choice(PERKS),
            "month": rng.choice(MONTHS), "audience": rng.choice(AUDIENCES).format(category=category)}


def row(rng: random.Random) -> tuple[dict, str]:
    kind = rng.choice(list(BRIEFS))
    s = slots(rng)
    n = rng.choice([1, 2, 2, 3])
    brief = BRIEFS[kind].format(**s, n=n).replace(f"{n} sentences.", f"{WORDS[n]}.")
    house = " ".join([rng.choice(HOOKS[kind]).format(**s), *[t.format(**s) for t in HOUSE[kind][:n]], SIGN_OFF])
    others = [" ".join(t.format(**s) for t in style[kind][: max(n, 2)]) for style in (OTHER, PLAIN)]
    mentions = [str(s[k]) + ("%" if k == "pct" else "") for k in MENTIONS[kind]]
    return {"prompt": brief, "completion": house, "mentions": mentions, "avoid": BANNED}, others


def main() -> None:
    rng = random.Random(20261202)
    rows, seen = [], set()
    while len(rows) < 360:
        r, other = row(rng)
        if r["prompt"] not in seen:  # every brief once, so no held-out brief is a training brief
            seen.add(r["prompt"])
            rows.append((r, other))
    train, heldout = rows[:320], rows[320:]
    with open(HERE / "brand_voice.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"prompt": r["prompt"], "completion": r["completion"]}, ensure_ascii=False) + "\n"
                     for r, _ in train)
    with open(HERE / "brand_voice.heldout.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r, _ in heldout)
    # each text once, and none that is also a held-out reference: the classifier must judge copy it never saw
    unseen = {r["completion"] for r, _ in heldout}
    voice = list(dict.fromkeys([(r["completion"], "house") for r, _ in train]
                               + [(o, "other") for _, others in train for o in others]))
    voice = [(text, label) for text, label in voice if text not in unseen]
    rng.shuffle(voice)
    with open(HERE / "brand_voice.voice.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(voice)
    print(f"{len(train)} training briefs, {len(heldout)} held-out briefs, {len(voice)} voice-classifier rows")


if __name__ == "__main__":
    main()
