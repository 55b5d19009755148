// `redrafter convert`: llama2.c checkpoints and Hugging Face folders to GGUF files that llama.cpp loads too.

import { type Command, InvalidArgumentError } from 'commander';
import { convertToGguf, GGUF_OUTPUT_TYPES, type GgufOutputType } from '../formats/convert-gguf.js';

interface ConvertFlags {
  from: 'llama2c' | 'hf';
  to: 'gguf';
  in: string;
  out: string;
  type: GgufOutputType;
  tokenizer?: string;
  name?: string;
}

function oneOf<T extends string>(values: readonly T[]): (value: string) => T {
  return (value) => {
    const found = values.find((v) => v === value.toLowerCase());
    if (found === undefined) throw new InvalidArgumentError(`expected one of ${values.join(', ')}, got "${value}"`);
    return found;
  };
}

export function registerConvert(program: Command): void {
  program.command('convert')
    .description('convert a llama2.c checkpoint or a Hugging Face folder to GGUF')
    .requiredOption('--from <format>', 'llama2c or hf', oneOf(['llama2c', 'hf'] as const))
    .option('--to <format>', 'output format (gguf)', oneOf(['gguf'] as const), 'gguf')
    .requiredOption('--in <path>', 'llama2.c .bin file or Hugging Face folder')
    .requiredOption('--out <file>', 'GGUF file to write')
    .option('--type <type>', `matrix encoding: ${GGUF_OUTPUT_TYPES.join(', ')} (norms stay f32)`, oneOf(GGUF_OUTPUT_TYPES), 'f32')
    .option('--tokenizer <path>', 'llama2c: tokenizer.bin (default: found beside the checkpoint)')
    .option('--name <name>', 'general.name of the model')
    .action((flags: ConvertFlags) => {
      const result = convertToGguf({ from: flags.from, input: flags.in, output: flags.out, type: flags.type, tokenizer: flags.tokenizer, name: flags.name });
      for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
      if (result.fallbacks.length > 0) process.stderr.write(`rows not whole ${flags.type} blocks, written as: ${result.fallbacks.join(', ')}\n`);
      process.stderr.write(`wrote ${flags.out}: ${result.architecture}, ${result.tensors} tensors, ${flags.type}\n`);
    });
}
