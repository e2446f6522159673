"""Write the tool-calling example: a shop assistant that calls functions (seeded, so the files are reproducible).

    python examples/make_tool_calls.py

"Larchwood Office" and every order, date and city here are invented. Each row offers the same five
functions in OpenAI's `tools` field. Most rows end with the assistant calling one, with arguments
taken from the customer's words (an order number copied, a date turned into ISO form, a complaint
mapped to a return reason); some continue after the tool's result with a reply that uses it, and a
few need no function at all. The held-out file draws half its requests from phrasings that never
appear in training, so a model that only memorised the training sentences will show it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
SYSTEM = "You are the shop assistant of Larchwood Office, which sells office furniture. Today is 2026-12-01."
PRODUCTS = ["standing desk", "office chair", "monitor arm", "desk lamp", "cable tray", "keyboard tray"]
COLOURS = ["walnut", "oak", "white", "black", "grey"]
CITIES = ["Berlin", "Hamburg", "Vienna", "Zurich", "Copenhagen", "Rotterdam", "Lyon", "Milan", "Oslo", "Prague"]
MONTHS = ["December", "January"]
REASONS = {"damaged": ["it arrived with a scratch on the top", "the {product} came with a cracked frame",
                       "the box was crushed and the {product} is dented"],
           "wrong_item": ["you sent me a desk lamp instead of the {product}", "I got the wrong model of {product}",
                          "this is not the {product} I ordered"],
           "changed_mind": ["the {product} doesn't fit my room after all", "I changed my mind about the {product}",
                            "I don't need the {product} any more"],
           "missing_parts": ["the {product} is missing two screws", "a leg of the {product} is missing",
                             "the mounting bracket for the {product} wasn't in the box"]}


def _function(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": required}}}


TOOLS = [
    _function("get_order_status", "Where an order is and when it arrives.",
              {"order_id": {"type": "string"}}, ["order_id"]),
    _function("start_return", "Open a return for an item of an order.",
              {"order_id": {"type": "string"}, "item": {"type": "string", "enum": PRODUCTS},
               "reason": {"type": "string", "enum": list(REASONS)}}, ["order_id", "item", "reason"]),
    _function("check_stock", "Whether a product is in stock, optionally in one colour.",
              {"product": {"type": "string", "enum": PRODUCTS}, "colour": {"type": "string", "enum": COLOURS}},
              ["product"]),
    _function("book_delivery", "Book the delivery date of an order.",
              {"order_id": {"type": "string"}, "date": {"type": "string", "description": "YYYY-MM-DD"}},
              ["order_id", "date"]),
    _function("create_quote", "A price quote for several units delivered to a city.",
              {"product": {"type": "string", "enum": PRODUCTS}, "quantity": {"type": "integer"},
               "city": {"type": "string"}}, ["product", "quantity", "city"]),
]

# function -> (phrasings seen in training, phrasings kept for the held-out file only)
ASKS = {
    "get_order_status": (["Where is my order {order}?", "Hi, any news on order {order}? It hasn't arrived.",
                          "Can you check the status of {order} please", "order {order} - when will it come?",
                          "I ordered a {product} last week (order {order}). Has it shipped?",
                          "tracking for {order}?"],
                         ["My parcel {order} is late, what's going on?",
                          "Could you look up order number {order} for me?"]),
    "start_return": (["I want to return the {product} from order {order}: {reason}.",
                      "Order {order}: {reason}. Please start a return.",
                      "{reason_cap}. Order {order}, can I send the {product} back?",
                      "Return request for order {order}, the {product}. {reason_cap}."],
                     ["Hello, {reason} (order {order}). I'd like my money back for the {product}.",
                      "Can you take back the {product}? {reason_cap}. It was order {order}."]),
    "check_stock": (["Do you have the {product} in {colour}?", "Is the {product} in stock in {colour}?",
                     "Is the {product} available right now?", "any {colour} {product}s left?",
                     "I'd like a {product}. Do you have any in stock?"],
                    ["Can I still buy a {colour} {product} from you?",
                     "Are {product}s sold out at the moment?"]),
    "book_delivery": (["Please deliver order {order} on {day_words}.", "Can order {order} come on {day_words}?",
                       "I'm home on {day_words}, please bring order {order} then.",
                       "Book delivery of {order} for {day_words}"],
                      ["For order {order}, the best day for me is {day_words}.",
                       "Could you schedule {order} to arrive {day_words}?"]),
    "create_quote": (["We need {quantity} {product}s delivered to {city}. What would that cost?",
                      "Quote for {quantity} x {product}, delivery to {city} please.",
                      "Price for {quantity} {product}s to our office in {city}?",
                      "Our team in {city} needs {quantity} new {product}s. Can you send an offer?"],
                     ["How much for {quantity} {product}s shipped to {city}?",
                      "We're furnishing an office in {city}: {quantity} {product}s. Your best price?"]),
}
# requests no function answers, with the shop's reply
PLAIN = [("What are your opening hours?", "Our showroom in Hamburg is open Monday to Saturday, 10:00–18:00, and this "
          "chat answers around the clock."),
         ("Do you ship outside the EU?", "We deliver within the EU, Norway, Switzerland and the UK. Delivery takes "
          "3–7 working days."),
         ("How long is the warranty on desks?", "Every Larchwood desk has a 5-year warranty on the frame and 2 years on "
          "the motor."),
         ("Can I pay by invoice?", "Yes: business customers can pay by invoice within 30 days; everyone else pays by "
          "card or PayPal at checkout."),
         ("thanks, that's all!", "You're welcome! Enjoy your new furniture.")]
STATUS = [("shipped", "DHL"), ("in transit", "UPS"), ("being packed", None), ("delivered", "DPD")]


def order_id(rng: random.Random) -> str:
    return f"{rng.choice('ABLW')}-{rng.randint(10000, 99999)}"


def day(rng: random.Random) -> tuple[str, str]:
    """A delivery day in words, and in ISO form (after today, 2026-12-01)."""
    month = rng.choice(MONTHS)
    n = rng.randint(2, 28)
    iso = f"2026-12-{n:02d}" if month == "December" else f"2027-01-{n:02d}"
    words = rng.choice([f"{n} {month}", f"{month} {n}", f"{month} {n}th" if n in (4, 5, 6, 7, 8, 9, 10) else
                        f"{n} {month}"])
    return words, iso


def request(rng: random.Random, name: str, heldout_phrasing: bool) -> tuple[str, dict]:
    """A customer's message asking for `name`, and the arguments the call should carry."""
    product, colour, order = rng.choice(PRODUCTS), rng.choice(COLOURS), order_id(rng)
    template = rng.choice(ASKS[name][1 if heldout_phrasing else 0])
    slots = {"product": product, "colour": colour, "order": order}
    if name == "get_order_status":
        args = {"order_id": order}
    elif name == "start_return":
        reason = rng.choice(list(REASONS))
        text = rng.choice(REASONS[reason]).format(product=product)
        slots |= {"reason": text, "reason_cap": text[0].upper() + text[1:]}
        args = {"order_id": order, "item": product, "reason": reason}
    elif name == "check_stock":
        args = {"product": product} | ({"colour": colour} if "{colour}" in template else {})
    elif name == "book_delivery":
        words, iso = day(rng)
        slots["day_words"] = words
        args = {"order_id": order, "date": iso}
    else:
        quantity, city = rng.randint(2, 40), rng.choice(CITIES)
        slots |= {"quantity": quantity, "city": city}
        args = {"product": product, "quantity": quantity, "city": city}
    return template.format(**slots), args


def call(n: int, name: str, args: dict) -> dict:
    return {"role": "assistant", "tool_calls": [{"id": f"call_{n}", "type": "function", "function": {
        "name": name, "arguments": json.dumps(args)}}]}


def row(rng: random.Random, heldout_phrasing: bool = False) -> dict:
    messages = [{"role": "system", "content": SYSTEM}]
    kind = rng.random()
    if kind < 0.1:  # nothing to call
        ask, answer = rng.choice(PLAIN)
        return {"messages": messages + [{"role": "user", "content": ask}, {"role": "assistant", "content": answer}],
                "tools": TOOLS}
    name = rng.choice(list(ASKS))
    if kind < 0.25:  # the call, its result, then a reply built on the result
        name = "get_order_status"
    text, args = request(rng, name, heldout_phrasing)
    messages += [{"role": "user", "content": text}, call(1, name, args)]
    if kind < 0.25:
        status, carrier = rng.choice(STATUS)
        words, iso = day(rng)
        result = {"status": status, "carrier": carrier, "eta": iso}
        messages.append({"role": "tool", "tool_call_id": "call_1", "content": json.dumps(result)})
        reply = f"Your order {args['order_id']} is {status}"
        reply += f" with {carrier}" if carrier and status != "delivered" else ""
        reply += "." if status == "delivered" else f" and should arrive on {iso}."
        messages.append({"role": "assistant", "content": reply})
    return {"messages": messages, "tools": TOOLS}


def main() -> None:
    rng = random.Random(20261201)
    train, seen = [], set()
    while len(train) < 200:  # no request twice: a repeat would weigh it more (the plain questions come once each)
        r = row(rng)
        if r["messages"][1]["content"] not in seen:
            train.append(r)
            seen.add(r["messages"][1]["content"])
    held = [r for r in (row(rng, heldout_phrasing=i % 2 == 0) for i in range(80))
            if r["messages"][1]["content"] not in seen][:60]
    for path, rows in (("tool_calls.jsonl", train), ("tool_calls.heldout.jsonl", held)):
        with open(HERE / path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


if __name__ == "__main__":
    main()
