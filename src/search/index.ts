/**
 * Image search on LanceDB: ImageStore (the table of embeddings, exact or IVF-PQ search),
 * indexFolder (incremental indexing of a folder) and the HTML results page.
 */
export { ImageStore, ANN_MIN_ROWS, DEFAULT_NPROBES, DEFAULT_REFINE_FACTOR, TABLE_NAME } from './store';
export type { AnnState, FileStamp, ImageRow, SearchHit, SearchOptions, StoreIdentity } from './store';
export { indexFolder, listImages, IMAGE_EXTENSIONS } from './index_folder';
export type { ImageFile, IndexFolderOptions, IndexSummary } from './index_folder';
export { renderResultsPage, thumbnailDataUri, writeResultsPage, THUMBNAIL_SIZE } from './html';
