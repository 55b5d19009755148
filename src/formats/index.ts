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
export {
  GGUF_DEFAULT_ALIGNMENT, GGUF_VALUE_TYPES, ggufMetadataReader, isGgufFile, readGguf,
  type GgufArray, type GgufEntry, type GgufFile, type GgufMetadataReader, type GgufTensorInfo, type GgufValue, type GgufValueType,
} from './gguf.js';
export { gguf, writeGguf, type GgufTensorInput, type GgufWriteOptions } from './gguf-write.js';
export {
  GGUF_TOKEN_TYPE, readGgufLlamaConfig, readGgufVocab, type GgufArchitecture, type GgufLlamaConfig, type GgufRopeScaling, type GgufVocab,
} from './gguf-model.js';
export { GGUF_PRE_TOKENIZERS, ggufPreTokenizerName, type GgufPreTokenizer } from './gguf-pre.js';
export {
  dequantize, describeGgmlType, floatToBf16, floatToHalf, GGML_TYPES, ggmlByteLength, ggmlTypeById, halfToFloatTable, quantize,
  type GgmlTypeInfo, type GgmlTypeName,
} from './quant.js';
export {
  parseTokenizerConfig, parseTokenizerJson, readTokenizerConfig, readTokenizerJson,
  type HfAddedToken, type HfNormalization, type HfPreTokenizerStep, type HfSplitBehavior, type HfTokenizerConfig, type HfTokenizerJson,
} from './tokenizer-json.js';
export {
  convertToGguf, ggufVocabFromTokenizerBin, ggufVocabFromTokenizerJson, GGUF_OUTPUT_TYPES, permuteHalvesToPairs,
  type ConvertOptions, type ConvertResult, type GgufOutputType,
} from './convert-gguf.js';
