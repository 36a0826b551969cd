"""Regenerates the bundled support-ticket dataset (train.csv, test.csv) deterministically.

Four classes of short customer messages, written from hand-made phrase lists and combined by a seeded
generator so the files are reproducible: `python data/support_tickets/generate.py`.
"""
from __future__ import annotations

import csv
import random
from pathlib import Path

OPENERS = ["Hi,", "Hello team,", "Good morning.", "Hey there,", "Dear support,", "", "", "Quick question:",
           "Sorry to bother you again,", "Urgent:"]
CLOSERS = ["Thanks!", "Please help.", "Can you look into it?", "Any update would be appreciated.", "", "",
           "Regards.", "This is the second time I write about this.", "Thank you in advance."]

PHRASES = {
    "billing": [
        "I was charged twice for my {plan} subscription this month",
        "my invoice shows {amount} but I expected a lower amount",
        "the refund for my cancelled order has not arrived after {days} days",
        "why did my card get billed {amount} on the {nth} of the month",
        "I need a copy of the invoice for {month} for my accountant",
        "the discount code was not applied and I paid full price",
        "please change the payment method from card to bank transfer",
        "I downgraded to the {plan} plan but was still charged the old price",
        "there is a pending charge of {amount} that I do not recognise",
        "can I get a receipt with our company VAT number on it",
        "the yearly renewal fee was taken without any reminder",
        "my payment failed although the card is valid until next year",
    ],
    "technical": [
        "the app crashes every time I open the {feature} screen",
        "I get error code {code} when I try to sync my data",
        "the website is extremely slow since the update on {month}",
        "uploads stop at {pct} percent and then nothing happens",
        "the {feature} button does nothing on my phone",
        "after the latest update the export to PDF produces an empty file",
        "notifications stopped working on {device}",
        "the page shows a blank white screen after I log in on {device}",
        "search returns no results even for items I know exist",
        "the integration with our calendar keeps disconnecting",
        "videos freeze after a few seconds on {device}",
        "the dashboard chart does not load and shows a spinning wheel forever",
    ],
    "shipping": [
        "my package has been stuck in transit for {days} days",
        "the tracking number you sent does not work on the courier site",
        "the parcel was delivered to the wrong address",
        "I received only one of the {count} items I ordered",
        "the box arrived damaged and the {item} inside is broken",
        "can I change the delivery address for order {order}",
        "the courier marked the order as delivered but nothing came",
        "how long does express delivery to {country} take",
        "my order {order} still says preparing for shipment after a week",
        "I would like to return the {item} I received yesterday",
        "the delivery was scheduled for {nth} but never arrived",
        "is it possible to pick up the order at a local store instead",
    ],
    "account": [
        "I cannot log in because the password reset email never arrives",
        "please delete my account and all my personal data",
        "how do I change the email address on my profile",
        "my account was locked after too many login attempts",
        "I want to add a second user to our {plan} workspace",
        "two factor authentication codes are rejected on {device}",
        "someone else may have accessed my account last night",
        "I forgot my username and cannot recover it",
        "how can I transfer ownership of the workspace to a colleague",
        "the profile picture I upload is not saved",
        "I would like to merge my two accounts into one",
        "please update the name on my account after my marriage",
    ],
}
FILL = {
    "plan": ["Basic", "Pro", "Team", "Enterprise", "Family"],
    "amount": ["$49.99", "$120", "EUR 15", "$9.90", "$300", "GBP 75"],
    "days": ["three", "five", "10", "twelve", "14", "20"],
    "nth": ["3rd", "15th", "1st", "28th", "9th"],
    "month": ["January", "March", "May", "August", "October", "December"],
    "feature": ["settings", "reports", "checkout", "calendar", "messages", "profile"],
    "code": ["E402", "500", "SYNC-17", "0x80070005", "403", "TIMEOUT-9"],
    "pct": ["45", "80", "99", "12", "63"],
    "device": ["my iPhone", "Android", "the desktop app", "Chrome on Windows", "my tablet", "Safari"],
    "count": ["three", "two", "four", "five"],
    "item": ["lamp", "headphones", "coffee grinder", "monitor", "jacket", "phone case"],
    "order": ["#48213", "#99102", "#12007", "#70345", "#55510"],
    "country": ["Germany", "Canada", "Japan", "Brazil", "Norway", "Kenya"],
}


def make_rows(rng: random.Random, per_class: int, start_id: int) -> list[dict[str, str]]:
    """per_class messages of every class, shuffled."""
    rows = []
    for label, phrases in PHRASES.items():
        for _ in range(per_class):
            body = rng.choice(phrases).format(**{k: rng.choice(v) for k, v in FILL.items()})
            if rng.random() < 0.3:  # some tickets mention a second, related problem
                body += " and " + rng.choice(phrases).format(**{k: rng.choice(v) for k, v in FILL.items()})
            text = " ".join(p for p in (rng.choice(OPENERS), body[0].upper() + body[1:] + ".", rng.choice(CLOSERS)) if p)
            rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    for i, row in enumerate(rows):
        row["id"] = f"t{start_id + i:05d}"
    return rows


def main() -> None:
    """Write train.csv (100 per class) and test.csv (30 per class) beside this script."""
    here = Path(__file__).parent
    rng = random.Random(20261126)
    for name, per_class, start in (("train", 100, 0), ("test", 30, 10_000)):
        with open(here / f"{name}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["id", "text", "label"])
            writer.writeheader()
            writer.writerows(make_rows(rng, per_class, start))


if __name__ == "__main__":
    main()
