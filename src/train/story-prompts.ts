// Story openings for distilling the stories260K drafter (TinyStories style), and a held-out set for evaluating it.
//
// Training openings are drawn from sentence templates and word lists by a seeded stream: 2,000 of them, with 117
// first names and 24 pet names, so that the drafter learns to continue names and sentence shapes in general rather
// than a few dozen names by heart (a first frozen list of 300 openings with 25 names generalised worse to unseen
// names). The held-out openings are frozen below; none of their names occurs in a training opening
// (story-prompts.test.ts checks it), and several of their sentence shapes are not templates here.

import { createRng } from '../sampling/random.js';

/** Names used only by the held-out prompts. */
export const HELDOUT_NAMES: readonly string[] = ['Nora', 'Hugo', 'Luna', 'Pip', 'Finn', 'Ella', 'Milo', 'Ivy', 'Ruby',
  'Theo', 'Oscar', 'Rosie'];

const words = (text: string): string[] => text.split(/\s+/).filter((w) => w.length > 0);
const GIRLS = words(`Lily Anna Sue Mia Zoe Emma Amy Molly Daisy Kitty Lucy Sara Sally Jane Mary Kate Lisa Tina Rose
  Bella Sophie Grace Chloe Ava Olivia Mila Lola Nina Rita Jill Beth Ann Jenny Katie Megan Polly Dolly Penny Wendy Cindy
  Susie Hannah Abby Julia Clara Alice Ellie Maya Lena Tara Gina Kim Jess Fay Dora Hazel Iris Wren`);
const BOYS = words(`Tim Tom Ben Sam Max Jack Jake Bob Billy Leo Timmy Dan Joe Ted Ned Fred Carl Paul Mark Luke Adam
  Noah Liam Jim Ron Eli Alex Sid Gus Rex Toby Peter Henry Jacob Ethan Ryan Kevin Owen Dylan Mike Steve Frank George
  Harry Oliver Jason Lucas Mason Logan Kyle Sean Zack Ian Roy Hank Nick Evan Jay Arlo`);
const PET_NAMES = words(`Spot Buddy Rocky Coco Fluffy Whiskers Mittens Tweety Goldie Peanut Pepper Sunny Bubbles Ollie
  Patch Socks Biscuit Muffin Snowy Ginger Lucky Daisy Fuzzy Pumpkin`);
const ANIMALS = words(`cat dog bird bunny bear mouse fox frog duck owl pig cow lion monkey turtle puppy kitten squirrel
  horse sheep fish bee butterfly elephant giraffe rabbit chicken goat tiger deer`);
const TRAITS = words('little big happy sad kind brave shy curious silly clever tiny old young friendly lazy grumpy funny gentle proud busy');
const LOOKS = words('red blue green yellow pink purple white black shiny soft big small new old');
const THINGS = words('ball toy kite box hat car truck doll book cake cookie apple flower rock stick boat bike drum shell balloon crayon blanket cup spoon bag key ring sock');
const PLACES = words('park garden forest beach school zoo farm lake river store town hill yard playground pond sea woods meadow house kitchen');
const GAMES = words('play run jump sing dance swim draw paint read walk');
const FEELINGS = words('happy sad scared excited tired hungry angry proud bored sleepy');
const WEATHER = words('sunny rainy windy snowy cold warm');

interface Cast {
  name: string; other: string; pet: string; animal: string; trait: string; look: string; thing: string; place: string;
  game: string; feeling: string; weather: string; child: string; his: string; he: string; him: string;
}

const TEMPLATES: readonly ((c: Cast) => string)[] = [
  (c) => `Once upon a time, there was a ${c.trait} ${c.animal} named ${c.pet}.`,
  (c) => `Once upon a time, there was a ${c.trait} ${c.child} named ${c.name}.`,
  (c) => `${c.name} and ${c.other} were best friends.`,
  (c) => `${c.name} wanted to ${c.game} with ${c.other}.`,
  (c) => `One morning, ${c.name} woke up and saw a ${c.thing}.`,
  (c) => `One day, ${c.name} found a ${c.look} ${c.thing}.`,
  (c) => `It was a ${c.weather} day. ${c.name} wanted to go to the ${c.place}.`,
  (c) => `${c.pet} was a ${c.trait} ${c.animal} who lived in the ${c.place}.`,
  (c) => `${c.name} loved to play with ${c.his} ${c.thing}.`,
  (c) => `${c.name} had a ${c.look} ${c.thing}.`,
  (c) => `One day, ${c.name} went to the ${c.place}.`,
  (c) => `${c.name} and ${c.his} mom went to the ${c.place}.`,
  (c) => `${c.name} saw a ${c.trait} ${c.animal} in the ${c.place}.`,
  (c) => `There was a ${c.trait} ${c.animal} called ${c.pet}.`,
  (c) => `${c.name} and ${c.other} went to the ${c.place} to ${c.game}.`,
  (c) => `${c.name} felt ${c.feeling} because ${c.he} lost ${c.his} ${c.thing}.`,
  (c) => `${c.name}'s mom gave ${c.him} a ${c.look} ${c.thing}.`,
  (c) => `Once upon a time, ${c.name} and ${c.other} lived in a small house.`,
  (c) => `${c.name} was playing in the ${c.place} when ${c.he} saw a ${c.animal}.`,
  (c) => `${c.name} liked to ${c.game} every day.`,
  (c) => `One sunny day, ${c.name} and ${c.his} dad went to the ${c.place}.`,
  (c) => `${c.name} did not want to share ${c.his} ${c.thing} with ${c.other}.`,
  (c) => `${c.name} had a pet ${c.animal} named ${c.pet}.`,
  (c) => `Once upon a time, in a big house, there lived a ${c.animal}.`,
];

/** `count` distinct story openings from the templates, the same for a given seed. */
export function storyOpenings(count: number, seed: number): string[] {
  const rng = createRng(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rng.nextUniform() * list.length)];
  const openings = new Set<string>();
  for (let attempts = 0; openings.size < count; attempts++) {
    if (attempts > count * 100) throw new RangeError(`storyOpenings: cannot find ${count} distinct openings`);
    const girl = rng.nextUniform() < 0.5;
    const name = pick(girl ? GIRLS : BOYS);
    let other = pick(rng.nextUniform() < 0.5 ? GIRLS : BOYS);
    while (other === name) other = pick(GIRLS);
    openings.add(pick(TEMPLATES)({
      name, other, pet: pick(PET_NAMES), animal: pick(ANIMALS), trait: pick(TRAITS), look: pick(LOOKS),
      thing: pick(THINGS), place: pick(PLACES), game: pick(GAMES), feeling: pick(FEELINGS), weather: pick(WEATHER),
      child: girl ? 'girl' : 'boy', his: girl ? 'her' : 'his', he: girl ? 'she' : 'he', him: girl ? 'her' : 'him',
    }));
  }
  return [...openings];
}

export const TRAINING_PROMPTS: readonly string[] = storyOpenings(2000, 0);

export const HELDOUT_PROMPTS: readonly string[] = [
  'Pip liked to look at the moon.',
  'One day, Hugo went to the hill with Ella.',
  'In a big house by the hill, there lived a silly pig named Pip.',
  'Theo and Ivy played in the forest all day.',
  'Hugo was very excited today.',
  'Ivy liked to look at the clouds.',
  'Oscar and Milo played in the garden all day.',
  'Ella was very excited today.',
  'Pip liked to look at the rain.',
  'In a big house by the road, there lived a sad frog named Luna.',
  'In a little house by the hill, there lived a small turtle named Ella.',
  'One day, Milo went to the lake with Nora.',
  'Milo liked to look at the moon.',
  'Ruby and Hugo played in the school all day.',
  'Once upon a time, there was a tiny boy named Finn.',
  'Nora and Hugo played in the garden all day.',
  'One day, Hugo went to the hill with Ivy.',
  'Pip was very sad today.',
  'Nora and Pip played in the yard all day.',
  'Nora found a soft cake under the tree.',
  'In a big house by the woods, there lived a little puppy named Oscar.',
  'In a big house by the woods, there lived a curious kitten named Nora.',
  'One day, Luna went to the forest with Ruby.',
  'Hugo found a green balloon under the bed.',
  'In a little house by the sea, there lived a sad bird named Luna.',
  'Rosie liked to look at the rain.',
  'Finn found a green toy under the table.',
  'Hugo found a soft truck under the tree.',
  'Luna and Finn played in the town all day.',
  'Milo found a red cookie under the bed.',
  'Ivy found a red cookie under the table.',
  'Once upon a time, there was a tiny girl named Finn.',
  'Theo was very hungry today.',
  'Theo was very excited today.',
  'In a little house by the hill, there lived a friendly squirrel named Milo.',
  'Once upon a time, there was a silly girl named Hugo.',
  'Once there was a lazy bunny who wanted a flower.',
  'Luna found a yellow balloon under the bed.',
  'One day, Nora went to the river with Finn.',
  'One day, Nora went to the zoo with Ruby.',
  'Oscar liked to look at the birds.',
  'One day, Nora went to the lake with Luna.',
  'In a big house by the sea, there lived a happy owl named Nora.',
  'Ruby found a purple rock under the tree.',
  'Finn was very tired today.',
  'Pip was very scared today.',
  'Ella and Luna played in the farm all day.',
  'Ella was very sad today.',
];
