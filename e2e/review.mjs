// End-to-end review in a real headless Chromium: log in as a reviewer, open the false
// negatives of a class, retag one image with the keyboard, undo, retag again, ask for "the
// same dress, another silhouette" on its page, move its dress box's corner with the keyboard
// and save it, filter the catalogue browser by a label, search
// by an uploaded photo, label three triplets with the keyboard, answer a crowd batch's tasks
// with the keyboard, and save a screenshot of every
// page. The Rust test that starts the server (crates/atelier-web/tests/
// browser.rs) then checks the catalogue and the label history.
//
// Environment: BASE_URL, USER, PASSWORD, RUN, FACET, LABEL (the class whose false negatives
// are reviewed), FILTER_LABEL (a label of FACET the catalogue browser keeps), SEARCH_RUN (a
// similarity run with a model) and PHOTO (a file to upload), CROWD_BATCH (a crowd batch to
// answer), SHOTS (folder for screenshots),
// CHROMIUM (browser binary).
// Prints one JSON line: {"image": ID, "labels_seen": [...], "swap_titles": [...], "swap_images": [...]}.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
};
const base = env("BASE_URL");
const shots = env("SHOTS");
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const failures = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (error) => failures.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") {
      failures.push(`console error: ${message.text()} (${message.location().url})`);
    }
  });
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

  await page.goto(`${base}/runs`);
  await page.waitForURL(/\/login/);
  await shot("01-login");
  await page.fill('input[name="user"]', env("USER"));
  await page.fill('input[name="password"]', env("PASSWORD"));
  await Promise.all([page.waitForURL(/\/runs$/), page.click('button[type="submit"]')]);
  await shot("02-runs");

  const run = env("RUN");
  const facet = env("FACET");
  await page.goto(`${base}/runs/${run}`);
  await shot("03-run");
  await page.goto(`${base}/runs/${run}/facets/${facet}`);
  await page.waitForSelector("svg.chart");
  await shot("04-f1-view");

  // The false negatives of LABEL, through the link in the F1 table's test row.
  const label = env("LABEL");
  await page.goto(`${base}/runs/${run}/facets/${facet}/review?kind=fn&label=${encodeURIComponent(label)}`);
  const card = page.locator(".card[data-image]").first();
  await card.waitFor();
  const image = await card.getAttribute("data-image");
  const labelOf = async () => (await card.locator(".label-value").textContent()).trim();
  const labelsSeen = [await labelOf()];
  await shot("05-false-negatives");

  // Keyboard only: focus the first card with an arrow, "1" picks the facet's first label.
  await page.keyboard.press("ArrowRight");
  const firstLabel = await card.locator("button.pick").nth(0).getAttribute("data-label");
  const secondLabel = await card.locator("button.pick").nth(1).getAttribute("data-label");
  await page.keyboard.press("1");
  await page.waitForFunction(
    ([selector, expected]) => document.querySelector(selector)?.textContent.trim() === expected,
    [`.card[data-image="${image}"] .label-value`, firstLabel]);
  labelsSeen.push(await labelOf());
  await shot("06-retagged");

  await page.keyboard.press("u");
  await page.waitForFunction(
    ([selector, expected]) => document.querySelector(selector)?.textContent.trim() === expected,
    [`.card[data-image="${image}"] .label-value`, labelsSeen[0]]);
  labelsSeen.push(await labelOf());
  await shot("07-undone");

  await page.keyboard.press("2");
  await page.waitForFunction(
    ([selector, expected]) => document.querySelector(selector)?.textContent.trim() === expected,
    [`.card[data-image="${image}"] .label-value`, secondLabel]);
  labelsSeen.push(await labelOf());
  await shot("08-retagged-again");

  await page.goto(`${base}/images/${image}?run=${run}`);
  await page.waitForSelector("table.history");
  await shot("09-image");
  // The box editor, keyboard only: focus the bottom-right corner, move it ten pixels left
  // (Shift) and one up, Enter saves; after a reload the form shows the saved box.
  const boxFields = () => Promise.all(["x0", "y0", "x1", "y1"].map((name) =>
    page.inputValue(`form.box-editor input[name="${name}"]`).then(Number)));
  const boxBefore = await boxFields();
  await page.focus('.box-overlay .handle[data-corner="2"]');
  await page.keyboard.press("Shift+ArrowLeft");
  await page.keyboard.press("ArrowUp");
  const boxWanted = await boxFields();
  await Promise.all([page.waitForURL(/#box$/), page.keyboard.press("Enter")]);
  await page.reload();
  await page.waitForSelector("form.box-editor");
  const boxSaved = await boxFields();
  await shot("16-box-editor");
  await page.goto(`${base}/images/${image}?run=${run}`);
  // "The same dress, another silhouette": one click on a chip under the similar dresses.
  await Promise.all([
    page.waitForURL(/swap_label=a-line/),
    page.click('.swap-row a.chip:text-is("a-line")'),
  ]);
  await page.waitForSelector("section.similar .similar-card");
  const swapTitles = await page.$$eval(".similar-card", (cards) => cards.map((c) => c.getAttribute("title")));
  const swapImages = await page.$$eval(".similar-card", (cards) =>
    cards.map((c) => c.getAttribute("href").split("/")[2].split("#")[0]));
  await shot("12-similar-swap");
  await page.goto(`${base}/runs/${run}/mistags`);
  await shot("10-mistags");
  await page.goto(`${base}/runs/compare?a=${run}&b=${run}`);
  await shot("11-compare");

  // The catalogue browser: keep one label with the filter form; every card must show it.
  const wanted = env("FILTER_LABEL");
  await page.goto(`${base}/images`);
  await page.selectOption('form.filters select[name="with"]', `${env("FACET")}:${wanted}`);
  await Promise.all([
    page.waitForURL(/with=/),
    page.click('form.filters button[type="submit"]'),
  ]);
  await page.waitForSelector(".catalogue-card");
  const catalogueLabels = await page.$$eval(".catalogue-card .labels-line", (lines) =>
    lines.map((l) => l.textContent.trim()));
  await shot("13-catalogue");

  // Search by an uploaded photo (with the similarity run that has a model).
  await page.goto(`${base}/search?run=${env("SEARCH_RUN")}`);
  await page.setInputFiles('input[name="photo"]', env("PHOTO"));
  await Promise.all([
    page.waitForSelector(".similar-results .similar-card"),
    page.click('form.upload button[type="submit"]'),
  ]);
  const uploadResults = await page.$$eval(".similar-results .similar-card", (cards) =>
    cards.map((c) => c.getAttribute("data-image")));
  await shot("14-search-upload");

  // The triplet editor: three picks with the keyboard (most similar 1, least similar 2, Enter).
  await page.goto(`${base}/triplets`);
  for (let i = 0; i < 3; i++) {
    await page.waitForSelector("form.triplet .candidate");
    await page.keyboard.press("1");
    await page.keyboard.press("2");
    if (i === 0) await shot("15-triplets");
    const reference = await page.inputValue('form.triplet input[name="reference"]');
    await page.keyboard.press("Enter");
    // The next page asks about another reference (a labelled one is never offered again).
    await page.waitForFunction((old) =>
      document.querySelector('form.triplet input[name="reference"]')?.value !== old, reference);
  }
  const tripletRows = await page.$$eval(".recent-triplets tr.triplet-row", (rows) => rows.length);

  // A crowd batch's tasks answered with the keyboard (2: each task's second label) until none
  // is left.
  await page.goto(`${base}/crowd/${env("CROWD_BATCH")}/answer`);
  let crowdAnswers = 0;
  while (await page.$("form.crowd-answer")) {
    if (crowdAnswers === 0) await shot("17-crowd-answer");
    const token = await page.inputValue('form.crowd-answer input[name="token"]');
    await Promise.all([page.waitForNavigation(), page.keyboard.press("2")]);
    const next = await page.$('form.crowd-answer input[name="token"]');
    if (next && (await next.inputValue()) === token) throw new Error("the same task came back");
    crowdAnswers += 1;
    if (crowdAnswers > 10) throw new Error("the answers never ran out");
  }

  if (failures.length) throw new Error(failures.join("\n"));
  console.log(JSON.stringify({
    image, labels_seen: labelsSeen, first_label: firstLabel, second_label: secondLabel,
    swap_titles: swapTitles, swap_images: swapImages,
    catalogue_labels: catalogueLabels, upload_results: uploadResults, triplet_rows: tripletRows,
    crowd_answers: crowdAnswers,
    box_before: boxBefore, box_wanted: boxWanted, box_saved: boxSaved,
  }));
} finally {
  await browser.close();
}
