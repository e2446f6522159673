"""Write the four example datasets in this folder (seeded, so the files are reproducible).

    python examples/make_examples.py

Every company, person, patient and number here is invented. Each dataset gets a held-out file
(NAME.heldout.EXT) that is never trained on; rows identical to a training row are kept out of it.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).parent
rng = random.Random(20261124)
pick = rng.choice

# --------------------------------------------------------------------------------------------
# 1. Support chatbot for "Northwind Notes", a note-taking app (OpenAI messages format)
# --------------------------------------------------------------------------------------------
SYSTEM = "You are the support assistant for Northwind Notes. Be brief, friendly and exact."
DEVICES = ["iPhone", "Android phone", "iPad", "Mac", "Windows laptop", "Chromebook", "Linux desktop"]
PLANS = ["Free", "Plus", "Team"]
NAMES = ["Maya", "Jonas", "Priya", "Tomás", "Aiko", "Lena", "Omar", "Grace", "Felix", "Sana", "Noah", "Ines"]

# intent -> (customer phrasings, answers). {device}, {plan}, {name} are filled in per row.
SUPPORT = {
    "reset_password": (
        ["How do I reset my password?", "I forgot my password and can't log in on my {device}.",
         "password reset please, locked out", "Can't remember my Northwind password, what now?",
         "Is there a way to change my password if I don't know the old one?"],
        ["Go to northwind.app/reset, enter your account email and we'll send a reset link that works for 1 hour. "
         "If it doesn't arrive in 5 minutes, check your spam folder.",
         "No problem! Open northwind.app/reset, type your account email and follow the link we send you. "
         "The link expires after 1 hour."]),
    "two_factor": (
        ["How do I turn on two-factor authentication?", "Can I add 2FA to my account?",
         "I want to make my account more secure on my {device}", "where is the 2FA setting"],
        ["Open Settings → Security → Two-factor authentication and scan the QR code with any authenticator app. "
         "Save the 10 backup codes somewhere safe.",
         "You can enable it in Settings → Security → Two-factor authentication. Scan the QR code with an "
         "authenticator app and keep your 10 backup codes safe."]),
    "lost_2fa": (
        ["I lost my phone and can't get my 2FA code", "My authenticator app was wiped, how do I log in?",
         "new phone, no 2FA codes, help"],
        ["Use one of your 10 backup codes on the login screen. If you don't have them, email "
         "security@northwind.app from your account address and we'll verify your identity within 2 business days."]),
    "pricing": (
        ["How much does Plus cost?", "What are your prices?", "What's the difference between the plans?",
         "is the Team plan per user?", "How much is Northwind for a team of {n}?"],
        ["Free costs nothing and includes 3 notebooks. Plus is $6 a month with unlimited notebooks and offline mode. "
         "Team is $10 per user a month and adds shared spaces and SSO.",
         "We have three plans: Free (3 notebooks), Plus at $6 a month (unlimited notebooks, offline mode) and Team "
         "at $10 per user a month (shared spaces, SSO, admin console)."]),
    "refund": (
        ["Can I get a refund?", "I was charged for Plus but I didn't want it, can I get my money back?",
         "I'd like a refund for this month", "Refund policy?", "I upgraded to {plan} by mistake"],
        ["Yes. Payments made in the last 30 days are fully refundable. Go to Settings → Billing → Request refund "
         "and the money is back on your card within 5–7 business days.",
         "Sure! Anything charged in the last 30 days can be refunded from Settings → Billing → Request refund. "
         "It reaches your card in 5–7 business days."]),
    "cancel": (
        ["How do I cancel my subscription?", "I want to cancel {plan}", "Please cancel my plan",
         "How can I stop the automatic renewal?"],
        ["Go to Settings → Billing → Cancel plan. You keep {plan} features until the end of the paid period, then "
         "your account moves to Free and no notes are deleted.",
         "You can cancel any time in Settings → Billing → Cancel plan. Your notes stay safe; the account switches "
         "to Free when the paid period ends."]),
    "export": (
        ["Can I export my notes?", "How do I download all my notes as PDF?", "Is there a Markdown export?",
         "I want a backup of everything on my {device}"],
        ["Yes. Open File → Export, choose Markdown, PDF or HTML, and pick a notebook or All notes. Large exports "
         "are emailed to you as a zip file.",
         "Use File → Export and pick Markdown, PDF or HTML. You can export one notebook or everything; big exports "
         "arrive by email as a zip."]),
    "sync": (
        ["My notes aren't syncing between my {device} and my {device2}", "Sync is stuck on my {device}",
         "changes I make on my {device} don't show up anywhere else", "Why is sync so slow?"],
        ["First check Settings → Sync shows \"Connected\". If it does, pull down on the note list to force a sync. "
         "Still stuck? Sign out and back in on the {device}; unsynced changes are kept locally.",
         "Please open Settings → Sync on the {device} and make sure it says \"Connected\", then pull down to "
         "refresh. If that doesn't help, sign out and in again — local changes are never lost."]),
    "offline": (
        ["Does Northwind work offline?", "Can I use the app on a plane?", "offline mode on {device}?"],
        ["Offline mode is part of Plus and Team. Turn it on in Settings → Offline and choose which notebooks to "
         "keep on the device; edits sync when you reconnect."]),
    "delete_account": (
        ["How do I delete my account?", "Please delete all my data", "I want to close my Northwind account for good"],
        ["Go to Settings → Account → Delete account. We cancel any plan, then permanently erase your notes after "
         "a 14-day grace period in which you can still change your mind.",
         "You can do it yourself in Settings → Account → Delete account. Everything is permanently erased after "
         "14 days; until then you can restore the account by logging in."]),
    "change_email": (
        ["How do I change my email address?", "I have a new work email, can I switch?",
         "update login email"],
        ["Open Settings → Account → Email, enter the new address and confirm the link we send to it. Your notes "
         "and plan stay exactly as they are."]),
    "invoice": (
        ["Where can I find my invoices?", "I need an invoice with my company's VAT number",
         "Can you send me a receipt for last month?"],
        ["All invoices are in Settings → Billing → Invoices as PDFs. Add your company name and VAT number under "
         "Billing details and they appear on every future invoice."]),
    "student": (
        ["Do you have a student discount?", "I'm a student, is Plus cheaper for me?", "education pricing?"],
        ["Yes — students get 50% off Plus. Sign up with your school email at northwind.app/students and the "
         "discount applies for 12 months, renewable while you study."]),
    "share": (
        ["How do I share a notebook with a colleague?", "Can {name} edit my notes?",
         "I want to share a note with someone who doesn't have an account"],
        ["Open the notebook, click Share and enter the person's email. Choose Can view or Can edit. People "
         "without an account can view shared notes through a public link.",
         "Click Share on the notebook or note, add {name}'s email and pick Can view or Can edit. For people "
         "without an account, turn on the public link instead."]),
    "attachments": (
        ["What's the maximum attachment size?", "My PDF won't upload", "Can I attach big video files?"],
        ["Attachments can be up to 25 MB on Free and 200 MB on Plus and Team. For bigger files, link them "
         "from your cloud drive instead."]),
    "trash": (
        ["I deleted a note by accident", "How do I recover deleted notes?", "Where is the trash?"],
        ["Deleted notes stay in Trash for 30 days. Open the sidebar → Trash, select the note and click Restore. "
         "After 30 days they are gone for good."]),
    "import": (
        ["Can I import from Evernote?", "How do I move my notes from OneNote?", "import my Markdown files"],
        ["Yes. Go to File → Import and choose Evernote (.enex), OneNote or a folder of Markdown files. Tags and "
         "attachments are kept; big imports may take a few minutes."]),
    "sso": (
        ["Do you support SSO?", "Can we log in with Okta?", "SAML login for our company"],
        ["Single sign-on with SAML (Okta, Azure AD, Google Workspace) is included in the Team plan. An admin sets "
         "it up in Admin console → Security → SSO."]),
    "hours": (
        ["When is support available?", "Can I talk to a human?", "What are your support hours?"],
        ["Our team answers email at help@northwind.app Monday to Friday, 8:00–18:00 CET, usually within 4 hours. "
         "Team customers also get live chat in the app."]),
    "payment_failed": (
        ["My payment failed", "Why was my card declined?", "I got an email saying my payment didn't go through"],
        ["Please update your card in Settings → Billing → Payment method. We retry the charge automatically "
         "after 3 days, and your {plan} features keep working in the meantime."]),
    "dark_mode": (
        ["Is there a dark mode?", "How do I make the app dark on my {device}?", "the screen is too bright at night"],
        ["Yes! Go to Settings → Appearance and choose Dark, Light or Match system. It applies to every device "
         "you're signed in on."]),
    "data_location": (
        ["Where is my data stored?", "Are you GDPR compliant?", "Do you keep data in the EU?"],
        ["Accounts created in Europe are stored in Frankfurt, others in Virginia, encrypted at rest with "
         "AES-256. We are GDPR compliant and our data processing agreement is at northwind.app/dpa."]),
}
GREETINGS = ["", "Hi! ", "Hello, ", "hey, ", "Good morning. ", "Hi there, "]
SUFFIXES = ["", " Thanks!", " thanks in advance", " Cheers", " Please help.", " I'm on the {plan} plan."]


def fill(text: str, slots: dict) -> str:
    return text.format(**slots)


def support_row() -> dict:
    intent = pick(list(SUPPORT))
    questions, answers = SUPPORT[intent]
    slots = {"device": pick(DEVICES), "device2": pick(DEVICES), "plan": pick(PLANS), "name": pick(NAMES),
             "n": rng.randint(3, 40)}
    question = pick(GREETINGS) + fill(pick(questions), slots) + fill(pick(SUFFIXES), slots)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question.strip()}]
    if rng.random() < 0.15:  # some conversations have an earlier exchange
        q0, a0 = SUPPORT[pick(list(SUPPORT))]
        messages[1:1] = [{"role": "user", "content": fill(pick(q0), slots)},
                         {"role": "assistant", "content": fill(pick(a0), slots)}]
    messages.append({"role": "assistant", "content": fill(pick(answers), slots)})
    return {"messages": messages, "intent": intent}


# --------------------------------------------------------------------------------------------
# 2. Email routing (text/label, CSV)
# --------------------------------------------------------------------------------------------
PRODUCTS = ["standing desk", "office chair", "monitor arm", "desk lamp", "cable tray", "keyboard tray"]
ROUTING = {
    "billing": ["I was charged twice for order #{order}. Can you refund the duplicate payment?",
                "The invoice for order #{order} shows the wrong VAT number, please correct it.",
                "My card was charged {amount} EUR but the order confirmation says less.",
                "Could you send me a proper invoice for my {product}? Accounting needs it.",
                "Why is there a second charge on my statement from your shop?"],
    "shipping": ["Where is my {product}? Order #{order} was supposed to arrive {day}.",
                 "The tracking for order #{order} hasn't moved in five days.",
                 "Can you deliver my {product} to my office address instead of home?",
                 "The courier left a note but I was home all day. How do I rebook delivery?",
                 "Do you ship to Norway, and how long does it take?"],
    "returns": ["The {product} arrived with a scratch on the top. I'd like to return it.",
                "I want to send back the {product}, it doesn't fit my room. How do returns work?",
                "One leg of the {product} is missing screws. Can I exchange it?",
                "Can I return an item after 30 days if it's unopened?",
                "The colour of the {product} is not what the photos showed. I want to return it."],
    "technical": ["The motor of my {product} makes a clicking noise when it goes up.",
                  "The control panel on my desk shows error E{code} and won't move.",
                  "How do I reset the height memory presets on the {product}?",
                  "The app won't connect to my {product} over Bluetooth.",
                  "My {product} stops halfway and beeps three times. What's wrong?"],
    "sales": ["We are furnishing an office for {n} people. Do you offer volume discounts?",
              "Is the {product} available in walnut? I'd order {n} of them.",
              "Can I get a quote for {n} standing desks with delivery to Berlin?",
              "Do you have a showroom where I can try the {product}?",
              "Are you planning a Black Friday sale on the {product}?"],
    "account": ["I can't log into my account, the reset email never arrives.",
                "Please change the email address on my account to my new one.",
                "How do I delete my customer account and my data?",
                "I'd like to unsubscribe from the newsletter but keep my account.",
                "Someone else's address shows up in my saved addresses."],
    "feedback": ["Just wanted to say the {product} is fantastic, assembly took 10 minutes.",
                 "Your delivery team was very friendly, thanks for the great service!",
                 "Suggestion: please include a small screwdriver with the {product}.",
                 "The assembly manual for the {product} could use clearer pictures.",
                 "I love my new desk. Any chance you'll make a matching shelf?"],
}
OPENERS = ["Hello,", "Hi team,", "Dear support,", "Good afternoon,", "Hi,", "To whom it may concern,", ""]
CLOSERS = ["Thanks, {name}", "Best regards, {name}", "Kind regards,\n{name}", "Cheers, {name}", "— {name}",
           "Thank you in advance.", ""]
EXTRA = ["", "", "I've been a customer for years.", "This is quite urgent.", "I already tried calling.",
         "My order number is #{order}.", "Please get back to me soon."]


# Held-out emails use phrasings that never occur in training, so the held-out score measures whether a
# model understands the request rather than recognising a template (a bag of words gets these wrong).
ROUTING_UNSEEN = {
    "billing": ["I think you took the money twice for the same {product}.",
                "Our finance department needs the company name added to the receipt.",
                "The amount on my bank app doesn't match what checkout told me.",
                "Please refund the difference, I was billed for express but got standard."],
    "shipping": ["It's been ages and nothing has turned up at my door.",
                 "Is there any way to get the parcel sent to a pick-up point near me?",
                 "The driver never came although the window was 9 to 12 today.",
                 "Which carrier do you use for deliveries to Switzerland?"],
    "returns": ["Honestly the {product} is too big for my flat, I'd like my money back and to send it to you.",
                "The box came dented and the tabletop is cracked, I don't want to keep it.",
                "Wrong item in the package, I ordered oak, this is white. Can I swap it?",
                "How long do I have to change my mind about a purchase?"],
    "technical": ["After the last firmware update the {product} goes up by itself.",
                  "The handset display is dead, no lights at all, although it's plugged in.",
                  "There's a grinding sound from the left column when lowering.",
                  "The collision sensor keeps stopping the desk for no reason."],
    "sales": ["We're a school and need {n} adjustable desks for classrooms, what would that cost?",
              "Do you work with resellers? We'd like to stock the {product}.",
              "Will the {product} come in a larger size any time soon? I'd buy one.",
              "Can I see the {product} in person somewhere in Hamburg before buying?"],
    "account": ["My login stopped working after I changed phones.",
                "Please remove all my personal information from your systems.",
                "I keep getting marketing mails even though I opted out.",
                "How do I merge my two customer profiles into one?"],
    "feedback": ["Setting up the {product} was a breeze, great job on the instructions.",
                 "The courier who brought my desk was really kind, please pass on my thanks.",
                 "It would be nice if the cable tray came in black as well.",
                 "Five stars from me, the {product} made working from home so much better."],
}


def routing_row(templates: dict = ROUTING) -> dict:
    label = pick(list(templates))
    slots = {"order": rng.randint(10000, 99999), "product": pick(PRODUCTS), "amount": rng.randint(49, 899),
             "day": pick(["on Monday", "yesterday", "last week", "two days ago"]), "code": rng.randint(1, 9),
             "n": rng.choice([4, 6, 12, 20, 35, 50]), "name": pick(NAMES)}
    parts = [pick(OPENERS), fill(pick(templates[label]), slots), fill(pick(EXTRA), slots), fill(pick(CLOSERS), slots)]
    return {"text": " ".join(p for p in parts if p), "label": label,
            "language_style": "formal" if parts[0] in ("Dear support,", "To whom it may concern,") else "casual"}


# --------------------------------------------------------------------------------------------
# 3. Invoice / receipt text to JSON fields (input/output)
# --------------------------------------------------------------------------------------------
VENDORS = ["Bäckerei Sonnenschein", "Hartmann Office Supply", "Café Lindgren", "Blue Harbor Fuel",
           "Nordic Print & Copy", "Greenleaf Grocers", "Atlas Hardware", "Pixel Repair Lab", "Rosso Trattoria",
           "Kestrel Taxi", "Mercado Fresco", "Oakline Books", "Summit Outdoor", "Laundry Loop"]
CURRENCIES = [("EUR", "€"), ("USD", "$"), ("GBP", "£"), ("SEK", "kr")]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
ITEMS = ["Coffee", "Printer paper A4", "Diesel", "Sourdough loaf", "Screen repair", "Taxi fare", "Notebook",
         "Hiking socks", "Pasta del giorno", "Wash & fold 5kg", "USB-C cable", "Croissant", "Toner cartridge"]


def invoice_row() -> dict:
    vendor = pick(VENDORS)
    code, symbol = pick(CURRENCIES)
    y, m, d = rng.choice([2024, 2025, 2026]), rng.randint(1, 12), rng.randint(1, 28)
    number = f"{pick(['INV', 'R', 'No', 'BON'])}-{rng.randint(1000, 99999)}"
    lines = [(pick(ITEMS), rng.randint(1, 4), round(rng.uniform(1.5, 120), 2)) for _ in range(rng.randint(1, 4))]
    total = round(sum(q * p for _, q, p in lines), 2)
    date_text = pick([f"{d:02d}/{m:02d}/{y}", f"{d} {MONTHS[m - 1]} {y}", f"{y}-{m:02d}-{d:02d}",
                      f"{MONTHS[m - 1][:3]} {d}, {y}", f"{d:02d}.{m:02d}.{y}"])
    item_lines = "\n".join(f"{q} x {name:<18} {symbol}{q * p:.2f}" for name, q, p in lines)
    layout = rng.randint(0, 2)
    if layout == 0:
        text = f"{vendor.upper()}\nInvoice {number}\nDate: {date_text}\n{item_lines}\nTOTAL {symbol}{total:.2f}"
    elif layout == 1:
        text = f"Receipt from {vendor} — {date_text}\nRef {number}\n{item_lines}\nAmount due: {total:.2f} {code}"
    else:
        text = f"{vendor}\n{item_lines}\n----\nSum: {code} {total:.2f}\n{date_text}  #{number}\nThank you!"
    fields = {"vendor": vendor, "invoice_number": number, "date": f"{y}-{m:02d}-{d:02d}", "total": total,
              "currency": code}
    return {"input": text, "output": json.dumps(fields, ensure_ascii=False)}


# --------------------------------------------------------------------------------------------
# 4. Clinical-style note summaries (prompt/completion; invented patients)
# --------------------------------------------------------------------------------------------
COMPLAINTS = [
    ("chest pain on exertion", "stable angina suspected", "start aspirin and refer for a stress test"),
    ("a productive cough and fever for 4 days", "community-acquired pneumonia", "start oral amoxicillin, review in 48 hours"),
    ("burning on urination", "uncomplicated urinary tract infection", "nitrofurantoin for 5 days"),
    ("worsening knee pain when climbing stairs", "knee osteoarthritis", "physiotherapy and paracetamol as needed"),
    ("headaches most mornings", "tension-type headache", "sleep hygiene advice and a headache diary"),
    ("increased thirst and frequent urination", "new type 2 diabetes (HbA1c 58 mmol/mol)", "start metformin and dietitian referral"),
    ("an itchy red rash on both forearms", "contact dermatitis", "emollients and a mild topical steroid for 7 days"),
    ("palpitations and weight loss", "possible hyperthyroidism", "thyroid function tests and review next week"),
    ("low mood and poor sleep for 6 weeks", "moderate depression", "talking therapy referral and follow-up in 2 weeks"),
    ("lower back pain after lifting", "mechanical back strain", "stay active, ibuprofen, review if not better in 4 weeks"),
    ("ankle swelling after a fall", "lateral ankle sprain", "rest, ice, compression and early mobilisation"),
    ("shortness of breath at night", "suspected heart failure", "BNP blood test and echocardiogram"),
]
HISTORIES = ["hypertension", "asthma", "no significant history", "type 2 diabetes", "previous smoker (20 pack-years)",
             "hypothyroidism", "migraine", "high cholesterol"]
FINDINGS = ["BP 142/88, HR 84", "temperature 38.4 °C, HR 102", "BP 128/76, BMI 31", "observations normal",
            "SpO2 95% on air, RR 20", "BP 151/94, HR 76", "tender on palpation, full range of movement"]


def clinical_row() -> dict:
    age, sex = rng.randint(19, 88), pick(["woman", "man"])
    complaint, assessment, plan = pick(COMPLAINTS)
    history, findings = pick(HISTORIES), pick(FINDINGS)
    weeks = rng.randint(1, 10)
    note = pick([
        f"{age}-year-old {sex} seen today with {complaint}. PMH: {history}. O/E: {findings}. "
        f"Impression: {assessment}. Plan: {plan}.",
        f"Pt is a {age} y/o {sex}. Presents with {complaint}, onset ~{weeks} wk ago. Background {history}. "
        f"Exam {findings}. Likely {assessment}. Plan — {plan}.",
        f"S: {complaint} ({weeks} weeks).\nO: {findings}.\nA: {assessment}; background of {history}.\nP: {plan}.\n"
        f"Patient: {sex}, {age}.",
    ])
    summary = f"{age}-year-old {sex} with {complaint}; {assessment}. Plan: {plan}."
    return {"prompt": f"Summarise this clinical note in one sentence.\n\n{note}", "completion": summary,
            "patient_sex": sex, "age_band": "65+" if age >= 65 else "18-64"}


# --------------------------------------------------------------------------------------------
RAMBLE_OPENERS = ["Thanks so much for reaching out, we really appreciate you taking the time to contact us today!",
                  "Great question! There are a lot of things to consider here, so let me walk you through it.",
                  "I completely understand how frustrating this can be, and I'm here to help you with it.",
                  "First of all, I want to say that we value every customer and your experience matters to us."]
RAMBLE_CLOSERS = ["I hope this helps, and please don't hesitate to get back to us if anything else comes up at all!",
                  "Let me know if there is anything else, big or small, that I can possibly help you with today.",
                  "Again, sorry for any inconvenience, and thank you for your patience and understanding."]


def preference_pairs(rows: list[dict], seed: int) -> list[dict]:
    """Support preferences: the exact, brief answer over a rambling version of it or another question's answer.

    A separate generator, so adding these files changes none of the others."""
    r = random.Random(seed)
    pairs = []
    for row in rows:
        good = row["messages"][-1]["content"]
        others = [x["messages"][-1]["content"] for x in rows if x["intent"] != row["intent"]]
        if r.random() < 0.5:
            bad = f"{r.choice(RAMBLE_OPENERS)} {good} {r.choice(RAMBLE_CLOSERS)}"
        else:
            bad = r.choice(others)
        pairs.append({"prompt": row["messages"][:-1], "chosen": good, "rejected": bad, "intent": row["intent"],
                      "kind": "rambling" if good in bad else "wrong"})
    return pairs


# Each support answer's facts, and a wrong value of the same shape for each: the menu path, a number, a
# plan, a place. A reply with one of them swapped reads as fluently and is as long as the right one, so
# the base model cannot tell them apart by likelihood; only knowing the product can.
WRONG_FACTS = [("Settings → Billing", "Profile → Payments"), ("Settings → Security", "Settings → Privacy"),
               ("Settings → Appearance", "Settings → Display"), ("Settings → Account", "Profile → Account"),
               ("Settings → Sync", "Settings → Devices"), ("Settings → Offline", "Settings → Storage"),
               ("File → Import", "Edit → Import"), ("File → Export", "Edit → Export"),
               ("Admin console → Security", "Admin console → Members"), ("sidebar → Trash", "sidebar → Archive"),
               ("Team plan", "Plus plan"), ("Frankfurt", "Dublin"), ("Virginia", "Oregon"), ("AES-256", "AES-128"),
               ("5–7 business days", "10–14 business days"), ("30 days", "60 days"), ("10 backup codes", "6 backup codes"),
               ("2 business days", "5 business days"), ("25 MB", "50 MB"), ("200 MB", "500 MB"), ("1 hour", "24 hours"),
               ("50% off", "20% off"), ("12 months", "6 months"), ("after 3 days", "after 7 days"),
               ("14-day", "30-day"), ("within 4 hours", "within 24 hours"), ("8:00–18:00", "9:00–17:00"),
               ("$6 a month", "$8 a month"), ("$10 per user", "$12 per user"), ("3 notebooks", "5 notebooks"),
               ("Can view or Can edit", "Can comment or Can edit"), ("Markdown, PDF or HTML", "Word, PDF or HTML"),
               ("Evernote (.enex)", "Notion (.zip)"), ("northwind.app/reset", "northwind.app/password"),
               ("northwind.app/students", "northwind.app/education"), ("Okta, Azure AD, Google Workspace", "Okta, OneLogin, Google Workspace")]


def fact_pairs(rows: list[dict], seed: int) -> list[dict]:
    """Support preferences: the right answer over the same answer with one fact swapped for a wrong one."""
    r = random.Random(seed)
    pairs = []
    for row in rows:
        good = row["messages"][-1]["content"]
        facts = [(right, wrong) for right, wrong in WRONG_FACTS if right in good]
        right, wrong = r.choice(facts)
        pairs.append({"prompt": row["messages"][:-1], "chosen": good, "rejected": good.replace(right, wrong, 1),
                      "intent": row["intent"], "swapped": f"{right} → {wrong}"})
    return pairs


def split_heldout(rows: list[dict], n_heldout: int, key) -> tuple[list[dict], list[dict]]:
    seen, unique = set(), []
    for r in rows:  # drop exact repeats: the generator can draw the same row twice
        k = key(r)
        if k not in seen:
            seen.add(k)
            unique.append(r)
    return unique[n_heldout:], unique[:n_heldout]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def unseen_routing(n: int) -> list[dict]:
    """Held-out emails from ROUTING_UNSEEN; the generator state is put back so the other files stay the same."""
    state = rng.getstate()
    try:
        return [routing_row(ROUTING_UNSEEN) for _ in range(n)]
    finally:
        rng.setstate(state)


def main() -> None:
    dump = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    # The same question never appears on both sides, so held-out scores measure generalisation.
    support = [support_row() for _ in range(420)]
    train, held = split_heldout(support, 60, key=lambda r: r["messages"][-2]["content"])
    write_jsonl(HERE / "support.jsonl", train)
    write_jsonl(HERE / "support.heldout.jsonl", held)
    write_jsonl(HERE / "support_preferences.jsonl", preference_pairs(train[:240], seed=7))
    write_jsonl(HERE / "support_preferences.heldout.jsonl", preference_pairs(held, seed=8))
    write_jsonl(HERE / "support_facts.jsonl", fact_pairs(train[:240], seed=9))
    write_jsonl(HERE / "support_facts.heldout.jsonl", fact_pairs(held, seed=10))

    train, held = split_heldout([routing_row() for _ in range(480)], 80, key=lambda r: r["text"])
    write_csv(HERE / "email_routing.csv", train)
    write_csv(HERE / "email_routing.heldout.csv", unseen_routing(len(held)))

    # "A month later": new emails for the maintenance walk-through (README), drawn after the rest so
    # every other file stays the same; v2 is the old file with them appended, as a team would keep it.
    state = rng.getstate()
    old = {r["text"] for r in train}
    new = [r for r in (routing_row() for _ in range(60)) if r["text"] not in old][:40]
    rng.setstate(state)
    write_csv(HERE / "email_routing.new.csv", new)
    write_csv(HERE / "email_routing.v2.csv", train + new)

    train, held = split_heldout([invoice_row() for _ in range(330)], 60, key=dump)
    write_jsonl(HERE / "invoices.jsonl", train)
    write_jsonl(HERE / "invoices.heldout.jsonl", held)

    train, held = split_heldout([clinical_row() for _ in range(330)], 60, key=lambda r: r["prompt"])
    write_jsonl(HERE / "clinical_notes.jsonl", train)
    write_jsonl(HERE / "clinical_notes.heldout.jsonl", held)


if __name__ == "__main__":
    main()
