// formats/: readers and writers for checkpoint and tokenizer files; pure parsing with precise errors (FormatError).

export { FormatError, type FormatErrorDetails } from './errors.js';
export {
  llama2cFileSize,
  llama2cLayout,
  readLlama2cCheckpoint,
  validateLlama2cConfig,
  writeLlama2cCheckpoint,
  type F32Tensor,
  type Llama2cCheckpoint,
  type Llama2cConfig,
} from './llama2c.js';
export {
  MAX_HEADER_BYTES,
  SAFETENSORS_DTYPE_BYTES,
  SAFETENSORS_INDEX,
  readSafetensors,
  readSafetensorsFolder,
  writeSafetensors,
  type F32TensorInput,
  type SafetensorInfo,
  type SafetensorsDtype,
  type SafetensorsFile,
} from './safetensors.js';
export { parseHfLlamaConfig, readHfLlamaConfig, type HfLlamaConfig, type HfModelType, type HfRopeScaling } from './hf-config.js';
export { readTokenizerBin, writeTokenizerBin, type TokenizerBin } from './tokenizer-bin.js';
