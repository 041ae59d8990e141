"""Writes the sample catalog: sample_data/taxonomy.txt and sample_data/products.csv.

A small, realistic store: seven departments, 3-4 levels, about a hundred leaf categories with
genuine near-neighbours (kinds of boots, kitchen knives, phone accessories, jackets), and a few
thousand products whose titles vary the way real ones do: brands, attributes, synonyms, titles
that never name their category, and a little label noise (mostly to a sibling, sometimes far off).
Deterministic: the same file every run. Usage: python sample_data/make_sample.py

The noise is recorded apart, in sample_data/label_noise.csv (id, given label, the product's real
category, kind), so label-error detection can be measured; the model never reads that file.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent
SEED = 20261125

# leaf path -> (synonyms naming the category ; hints that imply it without naming it)
CATALOG: dict[str, str] = {
    "Footwear > Boots > Rain Boots": "Rain Boots|Wellington Boots|Wellies ; waterproof rubber knee-high|puddle-proof pull-on|natural rubber festival",
    "Footwear > Boots > Cowboy Boots": "Cowboy Boots|Western Boots ; pointed-toe stitched leather|rodeo ranch heel|embroidered shaft",
    "Footwear > Boots > Hiking Boots": "Hiking Boots|Trekking Boots ; Vibram sole mid-cut trail|Gore-Tex backpacking|ankle-support mountain",
    "Footwear > Boots > Chelsea Boots": "Chelsea Boots|Elastic-Side Boots ; suede pull-on elastic gusset|slim ankle dealer",
    "Footwear > Boots > Snow Boots": "Snow Boots|Winter Boots ; insulated -30C faux-fur lined|thermal apres-ski",
    "Footwear > Boots > Work Boots": "Work Boots|Safety Boots ; steel toe cap EH rated|composite toe slip-resistant site",
    "Footwear > Sandals > Flip Flops": "Flip Flops|Thongs ; toe-post beach EVA|pool-side rubber summer",
    "Footwear > Sandals > Slides": "Slides|Slide Sandals ; one-strap pool slider|cushioned recovery slip-on",
    "Footwear > Sandals > Sport Sandals": "Sport Sandals|Hiking Sandals ; river-ready adjustable straps|trail water-friendly",
    "Footwear > Sandals > Heeled Sandals": "Heeled Sandals|Strappy Heels ; block heel ankle strap evening|stiletto party",
    "Footwear > Sneakers > Running Shoes": "Running Shoes|Road Runners ; marathon carbon-plate|neutral cushioning daily trainer",
    "Footwear > Sneakers > Basketball Shoes": "Basketball Shoes|Hoops Shoes ; high-top court grip|ankle-lock dunk",
    "Footwear > Sneakers > Skate Shoes": "Skate Shoes|Skateboarding Shoes ; vulcanised suede kickflip|gum sole low-top",
    "Footwear > Sneakers > Walking Shoes": "Walking Shoes|Comfort Sneakers ; all-day memory foam|wide-fit orthotic",
    "Footwear > Formal Shoes > Oxfords": "Oxford Shoes|Oxfords ; closed-lacing calfskin brogue|Goodyear welted cap-toe",
    "Footwear > Formal Shoes > Loafers": "Loafers|Penny Loafers ; tassel slip-on moccasin|horsebit suede driving",
    "Footwear > Formal Shoes > Pumps": "Pumps|Court Shoes ; pointed 10cm patent|office heel classic",
    "Kitchen & Dining > Kitchen Knives > Chef's Knives": "Chef's Knife|Cook's Knife|Gyuto ; 8-inch VG10 Damascus|full-tang German steel 20cm",
    "Kitchen & Dining > Kitchen Knives > Paring Knives": "Paring Knife|Peeling Knife ; 3.5-inch fruit peeler blade|small utility tourne",
    "Kitchen & Dining > Kitchen Knives > Bread Knives": "Bread Knife|Serrated Knife ; scalloped edge baguette|sourdough slicer",
    "Kitchen & Dining > Kitchen Knives > Santoku Knives": "Santoku Knife|Santoku ; granton edge 7-inch Japanese|hollow-ground vegetable",
    "Kitchen & Dining > Kitchen Knives > Knife Sets": "Knife Set|Knife Block Set ; 15-piece block with shears|magnetic stand 6-piece",
    "Kitchen & Dining > Cookware > Frying Pans": "Frying Pan|Skillet|Fry Pan ; non-stick 28cm induction|cast-iron pre-seasoned 12-inch",
    "Kitchen & Dining > Cookware > Saucepans": "Saucepan|Sauce Pan ; 2-quart lidded pouring lip|tri-ply 16cm",
    "Kitchen & Dining > Cookware > Dutch Ovens": "Dutch Oven|Casserole Pot|Cocotte ; enamelled cast iron 5.5qt|braiser lid self-basting",
    "Kitchen & Dining > Cookware > Woks": "Wok|Stir-Fry Pan ; carbon steel round-bottom|hand-hammered 14-inch",
    "Kitchen & Dining > Cookware > Stock Pots": "Stock Pot|Stockpot ; 12-litre broth|8-quart pasta insert",
    "Kitchen & Dining > Small Appliances > Blenders": "Blender|Smoothie Maker ; 1500W crushing ice|personal bullet cups",
    "Kitchen & Dining > Small Appliances > Toasters": "Toaster|Pop-Up Toaster ; 4-slice wide slot|bagel defrost 2-slot",
    "Kitchen & Dining > Small Appliances > Coffee Makers": "Coffee Maker|Coffee Machine|Espresso Machine ; 15-bar pump barista|drip brewer 12-cup carafe",
    "Kitchen & Dining > Small Appliances > Electric Kettles": "Electric Kettle|Kettle ; 1.7L rapid boil|gooseneck temperature control",
    "Kitchen & Dining > Small Appliances > Air Fryers": "Air Fryer|Hot Air Fryer ; 5.5L oil-free crisping|dual basket rapid air",
    "Kitchen & Dining > Tableware > Dinner Plates": "Dinner Plates|Plates ; stoneware set of 4 27cm|porcelain dishwasher-safe",
    "Kitchen & Dining > Tableware > Mugs": "Mug|Coffee Mug ; 350ml ceramic handle|stoneware latte",
    "Kitchen & Dining > Tableware > Wine Glasses": "Wine Glasses|Stemware ; crystal red wine set of 6|lead-free burgundy bowl",
    "Kitchen & Dining > Tableware > Cutlery Sets": "Cutlery Set|Flatware Set|Silverware ; 24-piece 18/10 stainless|forks spoons knives service for 6",
    "Electronics > Phone Accessories > Phone Cases": "Phone Case|Phone Cover|Bumper Case ; MagSafe clear shockproof|for iPhone 15 Pro silicone",
    "Electronics > Phone Accessories > Screen Protectors": "Screen Protector|Tempered Glass ; 9H anti-scratch 2-pack|privacy film edge-to-edge",
    "Electronics > Phone Accessories > Phone Chargers": "Phone Charger|Wall Charger|Charging Adapter ; 20W USB-C PD fast|GaN 65W dual-port plug",
    "Electronics > Phone Accessories > Charging Cables": "Charging Cable|USB-C Cable|Lightning Cable ; braided 2m data sync|3-pack 6ft cord",
    "Electronics > Phone Accessories > Car Phone Mounts": "Car Phone Mount|Car Phone Holder ; dashboard air-vent clamp|windshield suction cradle",
    "Electronics > Phone Accessories > Power Banks": "Power Bank|Portable Charger|Battery Pack ; 20000mAh dual output|pocket 10000mAh LED display",
    "Electronics > Audio > Headphones > Over-Ear Headphones": "Over-Ear Headphones|Headphones ; active noise cancelling 30h|closed-back studio monitor",
    "Electronics > Audio > Headphones > Wireless Earbuds": "Wireless Earbuds|True Wireless Earphones|Earbuds ; ANC charging case IPX4|in-ear Bluetooth 5.3 buds",
    "Electronics > Audio > Bluetooth Speakers": "Bluetooth Speaker|Portable Speaker ; waterproof 360 sound party|rugged outdoor bass boost",
    "Electronics > Audio > Soundbars": "Soundbar|Sound Bar ; Dolby Atmos 3.1 TV|wireless subwoofer home cinema",
    "Electronics > Computers > Laptops": "Laptop|Notebook|Ultrabook ; 14-inch Core i7 16GB 512GB SSD|Ryzen 7 OLED thin-and-light",
    "Electronics > Computers > Tablets": "Tablet|Tab ; 11-inch Wi-Fi 128GB stylus|10.1 inch Android kids edition",
    "Electronics > Computers > Computer Monitors": "Monitor|Computer Monitor|Display ; 27-inch 4K IPS 144Hz|curved 34 ultrawide USB-C",
    "Electronics > Computers > Keyboards": "Keyboard|Mechanical Keyboard ; hot-swap brown switches RGB|low-profile wireless QWERTY",
    "Electronics > Computers > Computer Mice": "Computer Mouse|Wireless Mouse|Gaming Mouse ; 16000 DPI ergonomic|silent click 2.4GHz receiver",
    "Electronics > Cameras > Action Cameras": "Action Camera|Action Cam ; 5.3K helmet waterproof housing|image stabilisation vlog POV",
    "Electronics > Cameras > Digital Cameras": "Digital Camera|Mirrorless Camera|Compact Camera ; 24MP APS-C body|30x optical zoom point-and-shoot",
    "Electronics > Cameras > Camera Lenses": "Camera Lens|Lens ; 50mm f/1.8 prime|70-200mm telephoto E-mount",
    "Electronics > Cameras > Tripods": "Tripod|Camera Tripod ; aluminium ball head 160cm|carbon travel legs",
    "Apparel > Women's Clothing > Dresses": "Dress|Midi Dress|Maxi Dress ; wrap floral summer|A-line cocktail sleeveless",
    "Apparel > Women's Clothing > Blouses": "Blouse|Women's Top ; chiffon button-front|ruffle sleeve office",
    "Apparel > Women's Clothing > Skirts": "Skirt|Pleated Skirt ; high-waist midi|denim mini A-line",
    "Apparel > Women's Clothing > Leggings": "Leggings|Yoga Pants ; high-waisted squat-proof|7/8 length compression",
    "Apparel > Men's Clothing > Dress Shirts": "Dress Shirt|Formal Shirt ; slim fit non-iron cutaway collar|double cuff poplin",
    "Apparel > Men's Clothing > T-Shirts": "T-Shirt|Tee|Crew Neck Tee ; 100% cotton graphic print|heavyweight regular fit",
    "Apparel > Men's Clothing > Jeans": "Jeans|Denim Jeans ; slim tapered selvedge|stretch straight-leg 5-pocket",
    "Apparel > Men's Clothing > Chinos": "Chinos|Chino Trousers ; stretch twill slim|garment-dyed flat front",
    "Apparel > Outerwear > Rain Jackets": "Rain Jacket|Rain Coat|Shell Jacket ; waterproof packable hooded|2.5-layer breathable",
    "Apparel > Outerwear > Down Jackets": "Down Jacket|Puffer Jacket ; 800-fill goose ultralight|quilted baffled",
    "Apparel > Outerwear > Fleece Jackets": "Fleece Jacket|Fleece ; full-zip polar 300|sherpa pile mid-layer",
    "Apparel > Outerwear > Parkas": "Parka|Winter Parka ; fur-trim hood arctic|longline insulated",
    "Apparel > Bags > Laptop Bags": "Laptop Bag|Laptop Sleeve|Messenger Bag ; padded 15.6-inch briefcase|commuter shoulder strap",
    "Apparel > Bags > Backpacks": "Backpack|Rucksack|Daypack ; 30L school|anti-theft USB port travel",
    "Apparel > Bags > Handbags": "Handbag|Tote Bag|Shoulder Bag ; vegan leather top-handle|crossbody chain strap",
    "Apparel > Bags > Duffel Bags": "Duffel Bag|Holdall|Weekender ; 60L gym travel|carry-on shoe compartment",
    "Home & Garden > Bedding > Duvet Covers": "Duvet Cover|Comforter Cover ; 400 thread count king|washed linen button closure",
    "Home & Garden > Bedding > Pillows": "Pillow|Bed Pillow ; memory foam contour|hollowfibre pair hotel",
    "Home & Garden > Bedding > Sheet Sets": "Sheet Set|Bed Sheets|Fitted Sheet ; deep pocket queen|Egyptian cotton sateen",
    "Home & Garden > Bedding > Blankets": "Blanket|Throw|Weighted Blanket ; chunky knit sofa|7kg glass bead",
    "Home & Garden > Lighting > Table Lamps": "Table Lamp|Bedside Lamp ; ceramic base linen shade|touch dimmable nightstand",
    "Home & Garden > Lighting > Floor Lamps": "Floor Lamp|Standing Lamp ; arc brass reading|tripod uplighter",
    "Home & Garden > Lighting > String Lights": "String Lights|Fairy Lights ; 10m warm white LED|solar garden festoon",
    "Home & Garden > Lighting > Ceiling Lights": "Ceiling Light|Pendant Light|Flush Mount ; rattan pendant|LED panel 24W",
    "Home & Garden > Garden Tools > Pruning Shears": "Pruning Shears|Secateurs ; bypass SK5 blade|ratchet anvil",
    "Home & Garden > Garden Tools > Garden Hoses": "Garden Hose|Hose Pipe ; 30m expandable|kink-free spray nozzle",
    "Home & Garden > Garden Tools > Lawn Mowers": "Lawn Mower|Mower ; 40V cordless 46cm|self-propelled petrol",
    "Home & Garden > Garden Tools > Rakes": "Rake|Leaf Rake ; telescopic steel tines|fan-shaped lawn",
    "Home & Garden > Furniture > Sofas": "Sofa|Couch|Settee ; 3-seater velvet|L-shaped sectional chaise",
    "Home & Garden > Furniture > Office Chairs": "Office Chair|Desk Chair ; ergonomic mesh lumbar|swivel high-back",
    "Home & Garden > Furniture > Bookcases": "Bookcase|Bookshelf|Shelving Unit ; 5-tier oak|ladder wall-mounted",
    "Home & Garden > Furniture > Coffee Tables": "Coffee Table|Cocktail Table ; lift-top storage|round marble living room",
    "Sports & Outdoors > Camping > Tents": "Tent|Dome Tent ; 4-person waterproof pop-up|backpacking 2-man",
    "Sports & Outdoors > Camping > Sleeping Bags": "Sleeping Bag|Sleeping Bag Mummy ; 3-season -5C|down mummy compressible",
    "Sports & Outdoors > Camping > Camping Stoves": "Camping Stove|Backpacking Stove ; butane gas burner|titanium canister",
    "Sports & Outdoors > Camping > Headlamps": "Headlamp|Head Torch ; 400-lumen rechargeable|red light running",
    "Sports & Outdoors > Fitness > Yoga Mats": "Yoga Mat|Exercise Mat ; 6mm non-slip TPE|cork pilates",
    "Sports & Outdoors > Fitness > Dumbbells": "Dumbbells|Dumbbell Set ; adjustable 24kg|hex rubber pair",
    "Sports & Outdoors > Fitness > Resistance Bands": "Resistance Bands|Exercise Bands ; 5-level loop set|latex pull-up assist",
    "Sports & Outdoors > Fitness > Jump Ropes": "Jump Rope|Skipping Rope ; speed cable ball-bearing|weighted counter",
    "Sports & Outdoors > Cycling > Bike Helmets": "Bike Helmet|Cycling Helmet ; MIPS road vented|urban commuter rear light",
    "Sports & Outdoors > Cycling > Bike Lights": "Bike Lights|Bicycle Light Set ; USB rechargeable front and rear|800 lumen handlebar",
    "Sports & Outdoors > Cycling > Bike Locks": "Bike Lock|U-Lock|Bicycle Lock ; sold secure gold D-lock|folding chain",
    "Beauty > Skincare > Moisturizers": "Moisturizer|Face Cream|Moisturiser ; hyaluronic 50ml day|ceramide barrier repair",
    "Beauty > Skincare > Sunscreen": "Sunscreen|Sun Cream|SPF 50 ; broad spectrum mineral|reef-safe face fluid",
    "Beauty > Skincare > Cleansers": "Facial Cleanser|Face Wash ; gentle foaming 150ml|salicylic acid gel",
    "Beauty > Hair Care > Shampoo": "Shampoo|Hair Shampoo ; sulphate-free 400ml|anti-dandruff tea tree",
    "Beauty > Hair Care > Hair Dryers": "Hair Dryer|Blow Dryer ; 2200W ionic diffuser|travel folding",
    "Beauty > Hair Care > Hair Straighteners": "Hair Straightener|Flat Iron ; ceramic plates 230C|titanium 1-inch",
}

BRANDS = {
    "Footwear": ["Merrow", "Timberline", "Aldo Verde", "Kestrel", "Ridgeway", "Hunterly", "Novastep", "Bramble & Co"],
    "Kitchen & Dining": ["Ashford", "Kurogane", "Maison Fer", "Zestio", "Copperline", "Nordkök", "Hearthware"],
    "Electronics": ["Voltra", "Ankerly", "Sonique", "Pixelon", "Nimbus", "Corebit", "Lumix-ish", "Halcyon"],
    "Apparel": ["Northway", "Linen & Loom", "Urbanist", "Fjellrev", "Coastline", "Mode Nine", "Tidewater"],
    "Home & Garden": ["Hearth & Hollow", "Greenthumb", "Lumenhaus", "Oakridge", "Softnest", "Verdant"],
    "Sports & Outdoors": ["Summit Peak", "Trailcraft", "Ironform", "Velocita", "Basecamp", "Zenflex"],
    "Beauty": ["Dermalab", "Glowra", "Silkwave", "Purelle", "Ionix"],
}
COLOURS = ["Black", "White", "Navy", "Olive", "Tan", "Grey", "Burgundy", "Sand", "Red", "Forest Green"]
DEPARTMENT_EXTRAS = {
    "Footwear": ["Size 9", "UK 7", "EU 42", "Wide Fit", "Men's", "Women's", "Unisex"],
    "Kitchen & Dining": ["Dishwasher Safe", "Gift Boxed", "Stainless Steel", "Induction Ready", "BPA-Free"],
    "Electronics": ["2024 Model", "Black Edition", "Renewed", "with Warranty", "Bluetooth 5.3"],
    "Apparel": ["Size M", "Size L", "Regular Fit", "Organic Cotton", "Recycled"],
    "Home & Garden": ["King Size", "Set of 2", "Easy Assembly", "Weatherproof", "Eco"],
    "Sports & Outdoors": ["Lightweight", "Pro Series", "Set of 2", "All-Weather", "Travel"],
    "Beauty": ["Fragrance-Free", "Vegan", "Travel Size", "Dermatologist Tested", "Salon Grade"],
}
DESCRIPTIONS = [
    "Built to last with a {hint} design.",
    "Customers love the {hint} feel; {extra}.",
    "{extra}. Ideal as a gift.",
    "Features: {hint}. {extra}.",
]


def parse_catalog() -> list[tuple[str, list[str], list[str]]]:
    out = []
    for path, spec in CATALOG.items():
        names, hints = (part.strip() for part in spec.split(";"))
        out.append((path, names.split("|"), hints.split("|")))
    return out


def make_title(rng: random.Random, dept: str, names: list[str], hints: list[str]) -> str:
    brand = rng.choice(BRANDS[dept])
    noun = rng.choice(names)
    hint = rng.choice(hints)
    extra = rng.choice(DEPARTMENT_EXTRAS[dept])
    colour = rng.choice(COLOURS)
    style = rng.random()
    if style < 0.35:
        return f"{brand} {colour} {noun}"
    if style < 0.60:
        return f"{brand} {hint.title()} {noun} - {extra}"
    if style < 0.78:
        return f"{noun} by {brand}, {hint}, {colour.lower()}"
    # titles that never name their category: only the hints and the brand
    return f"{brand} {hint} ({extra}, {colour})"


def build(n_products_hint: int = 4600) -> tuple[list[str], list[dict]]:
    rng = random.Random(SEED)
    leaves = parse_catalog()
    weights = [rng.choice([0.3, 0.6, 1.0, 1.0, 1.5, 2.0]) for _ in leaves]
    total = sum(weights)
    siblings: dict[str, list[str]] = {}
    for path, _, _ in leaves:
        siblings.setdefault(path.rsplit(" > ", 1)[0], []).append(path)
    rows = []
    for path, names, hints in leaves:
        dept = path.split(" > ")[0]
        count = max(12, round(n_products_hint * weights[leaves.index((path, names, hints))] / total))
        for _ in range(count):
            title = make_title(rng, dept, names, hints)
            label = path
            r = rng.random()
            if r < 0.025:  # mild noise: a sibling category
                label = rng.choice(siblings[path.rsplit(" > ", 1)[0]])
            elif r < 0.035:  # severe noise: anywhere in the store
                label = rng.choice(leaves)[0]
            description = ""
            if rng.random() < 0.6:
                description = rng.choice(DESCRIPTIONS).format(hint=rng.choice(hints), extra=rng.choice(DEPARTMENT_EXTRAS[dept]))
            kind = "" if label == path else ("sibling" if r < 0.025 else "anywhere")
            rows.append({"title": title, "description": description, "category_path": label, "real": path, "kind": kind})
    rng.shuffle(rows)
    for i, row in enumerate(rows):
        row["id"] = f"SKU-{100000 + i}"
    taxonomy_lines = sorted({" > ".join(p.split(" > ")[:d]) for p, _, _ in leaves for d in range(1, len(p.split(" > ")) + 1)})
    return taxonomy_lines, rows


def main() -> None:
    taxonomy_lines, rows = build()
    (OUT / "taxonomy.txt").write_text("\n".join(taxonomy_lines) + "\n", encoding="utf-8")
    with open(OUT / "products.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "title", "description", "category_path"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    noisy = [r for r in rows if r["kind"]]
    with open(OUT / "label_noise.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "given_label", "real_label", "kind"])
        writer.writerows([r["id"], r["category_path"], r["real"], r["kind"]] for r in noisy)
    print(f"wrote {len(taxonomy_lines)} taxonomy lines, {len(rows)} products ({len(noisy)} mislabelled on purpose, "
          f"listed in label_noise.csv) to {OUT}")


if __name__ == "__main__":
    main()
